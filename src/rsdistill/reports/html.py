"""One static report page (HTML, plus a Markdown twin) from titled sections.

The page opens from disk: no server, no scripts, no network. Styles are inline and images are
referenced by paths relative to the page, so the folder can be zipped, mailed or committed as is.
An image outside the page's folder is copied into ``<page stem>_files/`` beside it.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RsDistillError
from ..io import atomic_write_text
from .tables import markdown_escape


@dataclass
class ReportSection:
    title: str
    caption: str = ""  # one line: what to look for
    table_markdown: str | None = None
    image: Path | None = None  # a PNG; copied/linked relative to the page


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { margin-top: 2em; border-bottom: 1px solid #eee; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
p.caption { color: #555; font-style: italic; margin: .3em 0 .8em; }
figure { margin: .5em 0; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
"""


def write_html(path: Path, title: str, settings: dict[str, Any], sections: list[ReportSection]) -> Path:
    """Write the page to ``path`` and return it. Images are linked relative to the page."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{_e(title)}</title>", f"<style>{_CSS}</style>",
           # An empty data: favicon keeps the browser from requesting /favicon.ico from disk.
           '<link rel="icon" href="data:,">', "</head>", "<body>", f"<h1>{_e(title)}</h1>"]
    for i, s in enumerate(sections):
        out.append(f'<section id="s{i + 1}">')
        out.append(f"<h2>{_e(s.title)}</h2>")
        if s.caption:
            out.append(f'<p class="caption">{_e(s.caption)}</p>')
        if s.table_markdown:
            out.append(markdown_to_html(s.table_markdown))
        if s.image is not None:
            rel = _place_image(Path(s.image), path)
            out.append(f'<figure><img src="{_e(rel)}" alt="{_e(s.title)}"></figure>')
        out.append("</section>")
    if settings:
        out.append('<section id="settings">')
        out.append("<h2>Settings</h2>")
        out.append(markdown_to_html(_settings_markdown(settings)))
        out.append("</section>")
    out += ["</body>", "</html>"]
    atomic_write_text(path, "\n".join(out) + "\n")
    return path


def write_markdown(path: Path, title: str, settings: dict[str, Any], sections: list[ReportSection]) -> Path:
    """Write the Markdown twin of :func:`write_html` (same sections, same relative images)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = lambda s: html.escape(s, quote=False)  # noqa: E731 - run names and labels are the user's text
    out = [f"# {text(title)}", ""]
    for s in sections:
        out += [f"## {text(s.title)}", ""]
        if s.caption:
            out += [f"*{text(s.caption)}*", ""]
        if s.table_markdown:
            out += [s.table_markdown.rstrip("\n"), ""]
        if s.image is not None:
            rel = _place_image(Path(s.image), path)
            out += [f"![{text(s.title)}]({rel})", ""]
    if settings:
        out += ["## Settings", "", _settings_markdown(settings).rstrip("\n"), ""]
    atomic_write_text(path, "\n".join(out))
    return path


def _place_image(image: Path, page: Path) -> str:
    """The image's path relative to the page's folder (as a URL path), copying it there if it lives
    elsewhere: a page that links outside its folder breaks as soon as the folder is moved."""
    if not image.is_file():
        raise RsDistillError(f"report image '{image}' does not exist")
    base = page.parent.resolve()
    src = image.resolve()
    try:
        rel = src.relative_to(base)
    except ValueError:
        dest_dir = base / f"{page.stem}_files"
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / src.name
        n = 1
        while dest.exists() and not _same_file(dest, src):
            dest = dest_dir / f"{src.stem}_{n}{src.suffix}"
            n += 1
        if not dest.exists():
            shutil.copy2(src, dest)
        rel = dest.relative_to(base)
    return rel.as_posix()


def _same_file(a: Path, b: Path) -> bool:
    return a.stat().st_size == b.stat().st_size and a.read_bytes() == b.read_bytes()


def _settings_markdown(settings: dict[str, Any]) -> str:
    rows = _flatten(settings)
    w = max([len("setting")] + [len(k) for k, _ in rows])
    lines = [f"| {'setting'.ljust(w)} | value |", f"|{'-' * (w + 2)}|-------|"]
    lines += [f"| {markdown_escape(k).ljust(w)} | {markdown_escape(v)} |" for k, v in rows]
    return "\n".join(lines) + "\n"


def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            rows += _flatten(v, key + ".")
        elif isinstance(v, (str, int, float, bool)) or v is None:
            rows.append((key, str(v)))
        else:
            rows.append((key, json.dumps(v, default=str)))
    return rows


_NUM = re.compile(r"^[-+]?[\d.,]+\s*(±\s*[\d.,]+)?%?$")


def markdown_to_html(text: str) -> str:
    """The small Markdown subset the report tables use: pipe tables, "- " lists, **bold** and
    `code` inline, plain paragraphs. Everything is escaped; nothing the text says can become markup."""
    out: list[str] = []
    lines = text.strip("\n").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                block.append(lines[i].strip())
                i += 1
            out.append(_table_html(block))
            continue
        if line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].strip().startswith("- "):
                items.append(f"<li>{_inline(lines[i].strip()[2:])}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
            continue
        if line:
            out.append(f"<p>{_inline(line)}</p>")
        i += 1
    return "\n".join(out)


def _cells(row: str) -> list[str]:
    row = row.strip()
    row = row.removeprefix("|")
    row = row.removesuffix("|") if not row.endswith("\\|") else row
    # a "\|" is a "|" inside a cell (tables.markdown_escape)
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", row)]


def _is_rule(row: str) -> bool:
    return all(re.fullmatch(r":?-+:?", c) for c in _cells(row) if c) and "-" in row


def _table_html(block: list[str]) -> str:
    header, body = _cells(block[0]), block[1:]
    if body and _is_rule(body[0]):
        body = body[1:]
    out = ["<table>", "<thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in header) + "</tr></thead>", "<tbody>"]
    for row in body:
        tds = []
        for c in _cells(row):
            cls = ' class="num"' if _NUM.match(c) else ""
            tds.append(f"<td{cls}>{_inline(c)}</td>")
        out.append("<tr>" + "".join(tds) + "</tr>")
    out += ["</tbody>", "</table>"]
    return "\n".join(out)


def _inline(s: str) -> str:
    s = _e(html.unescape(s))  # Markdown's character references (&lt;) are the characters they name
    s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", s)


def _e(s: str) -> str:
    return html.escape(str(s), quote=True)
