"""The static report page (reports/html.py) and its Markdown twin."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from rsdistill.errors import RsDistillError
from rsdistill.reports.html import ReportSection, markdown_to_html, write_html, write_markdown
from rsdistill.reports.tables import Table

from .browser import open_page


def png(path: Path, colour=(200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), colour).save(path)
    return path


def sections(tmp_path: Path) -> list[ReportSection]:
    t = Table(["run", "top-1 (%)"], title="Results")
    t.add("kd <b>", 81.234)
    return [
        ReportSection("Table only", "what to look for", t.to_markdown()),
        ReportSection("Inside the folder", "a figure beside the page", image=png(tmp_path / "out" / "figs" / "a.png")),
        ReportSection("Outside the folder", "copied next to the page", image=png(tmp_path / "elsewhere" / "b.png")),
    ]


def test_html_page_is_static_escaped_and_links_images_relative_to_itself(tmp_path):
    page = write_html(tmp_path / "out" / "report.html", "Report <1>", {"seed": 0, "data": {"root": "/d"}},
                      sections(tmp_path))
    text = page.read_text()
    assert "<title>Report &lt;1&gt;</title>" in text
    assert "<script" not in text and "http://" not in text and "https://" not in text  # no network, no scripts
    assert "<td>kd &lt;b&gt;</td>" in text and '<td class="num">81.23</td>' in text
    assert '<p class="caption">what to look for</p>' in text
    srcs = re.findall(r'<img src="([^"]+)"', text)
    assert srcs == ["figs/a.png", "report_files/b.png"]
    for src in srcs:
        assert (page.parent / src).is_file()
    assert "<td>data.root</td><td>/d</td>" in text  # nested settings are flattened


def test_markdown_twin_has_the_same_sections_and_images(tmp_path):
    md = write_markdown(tmp_path / "out" / "report.md", "Report", {"seed": 0}, sections(tmp_path)).read_text()
    assert md.startswith("# Report\n")
    assert [ln for ln in md.splitlines() if ln.startswith("## ")] == [
        "## Table only", "## Inside the folder", "## Outside the folder", "## Settings"]
    assert "![Inside the folder](figs/a.png)" in md and "![Outside the folder](report_files/b.png)" in md
    assert "| kd &lt;b&gt;" in md and "*what to look for*" in md  # the user's text, shown, never markup


def test_an_image_with_the_same_name_from_elsewhere_is_not_overwritten(tmp_path):
    a, b = png(tmp_path / "x" / "fig.png", (0, 0, 0)), png(tmp_path / "y" / "fig.png", (255, 255, 255))
    text = write_html(tmp_path / "out" / "r.html", "r", {}, [ReportSection("a", image=a), ReportSection("b", image=b)]).read_text()
    assert re.findall(r'<img src="([^"]+)"', text) == ["r_files/fig.png", "r_files/fig_1.png"]


def test_a_missing_image_is_a_clear_error(tmp_path):
    with pytest.raises(RsDistillError, match="nope.png"):
        write_html(tmp_path / "r.html", "r", {}, [ReportSection("a", image=tmp_path / "nope.png")])


def test_markdown_subset():
    html = markdown_to_html("**Title**\n\n| a | b |\n|---|:-:|\n| x | 1.5 ± 0.2 |\n\n- one\n- `two`\n\nplain")
    assert html.splitlines()[0] == "<p><strong>Title</strong></p>"
    assert "<th>a</th><th>b</th>" in html and '<td class="num">1.5 ± 0.2</td>' in html
    assert "<ul><li>one</li><li><code>two</code></li></ul>" in html and "<p>plain</p>" in html


def test_the_page_loads_in_a_headless_browser_and_a_broken_image_is_caught(tmp_path, browser):
    page = write_html(tmp_path / "out" / "report.html", "Report", {"seed": 0}, sections(tmp_path))
    check = open_page(browser, page)
    assert (check.ready, check.title) == ("complete", "Report")
    assert len(check.images) == 2 and check.broken_images == []
    assert check.console_errors == []
    # The check can fail: a figure removed after writing shows as a broken image and a console error.
    (tmp_path / "out" / "figs" / "a.png").unlink()
    check = open_page(browser, page)
    assert check.broken_images == ["figs/a.png"]
    assert any("a.png" in e for e in check.console_errors)


def test_latex_tables_escape_every_special_character_once():
    t = Table(["label", "top-1"])
    t.add("50% & $x_1$ #2 {a} ~b ^c \\d", "81.2 ± 0.4")
    row = t.to_latex().splitlines()[4]  # after the tabular opening, a rule, the header, a rule
    assert row == (r"50\% \& \$x\_1\$ \#2 \{a\} \textasciitilde{}b \textasciicircum{}c \textbackslash{}d"
                   r" & 81.2 $\pm$ 0.4 \\")


def test_markdown_shows_a_labels_html_and_pipes_as_text_and_the_page_shows_them_the_same():
    t = Table(["run", "top-1"])
    t.add("<img src=x onerror=alert(1)> a|b", 1.0)
    md = t.to_markdown()
    assert "<img" not in md and "&lt;img src=x onerror=alert(1)&gt; a\\|b" in md
    page = markdown_to_html(md)
    assert "<td>&lt;img src=x onerror=alert(1)&gt; a|b</td>" in page and "<img" not in page
