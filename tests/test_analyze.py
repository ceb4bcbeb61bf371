"""``rsdistill analyze`` end to end on tiny runs: the teacher (a CE run) and an ISDM student."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from rsdistill.cli import main

from .browser import open_page
from .conftest import TINY

FIGURES = ["similarity.png", "tsne.png", "fidelity.png", "cost.png", "per_class.png", "curves.png"]


def figure_files(a: dict) -> list[str]:
    return sorted(FIGURES + list(a["figures"]["soft_labels"].values()))


@pytest.fixture(scope="module")
def isdm_run(scenes, teacher_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("analyze") / "isdm"
    assert main(["-q", "distill", "--data", str(scenes), "--teacher", str(teacher_run), "--student", "resnet20",
                 "--method", "isdm", "--out", str(out), "--set", *TINY]) == 0
    return out


@pytest.fixture(scope="module")
def analysis(scenes, teacher_run, isdm_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("analyze") / "analysis"
    assert main(["-q", "analyze", str(teacher_run), str(isdm_run), "--data", str(scenes), "--out", str(out),
                 "--html"]) == 0
    return out


def test_analyze_draws_every_figure_and_records_the_numbers(analysis, teacher_run, isdm_run):
    a = json.loads((analysis / "analysis.json").read_text())
    # runs are named by their paths below the runs' common folder
    classes, names = a["classes"], [r["name"] for r in a["runs"]]
    teacher, isdm = names
    assert teacher.endswith("teacher") and isdm.endswith("isdm")
    assert list(a["figures"]["soft_labels"]) == [isdm]
    for name in figure_files(a):
        data = (analysis / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 2000, name
    C = len(classes)
    assert C == 4 and a["notes"] == []

    for name, run in zip(names, (teacher_run, isdm_run)):
        metrics = json.loads((run / "metrics.json").read_text())
        records = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
        info = next(r for r in a["runs"] if r["name"] == name)
        # the last checkpoint on the run's own test split gives the run's own last-epoch top-1
        assert info["test_top1"] == pytest.approx(metrics["top1"])
        sim = np.array(a["similarity"][name]["matrix"], dtype=float)
        assert sim.shape == (C, C) and np.all(np.abs(sim) <= 1 + 1e-6)
        off = sim[~np.eye(C, dtype=bool)]
        assert a["similarity"][name]["mean_off_diagonal"] == pytest.approx(off.mean(), abs=1e-5)
        tsne = a["tsne"][name]
        assert np.array(tsne["points"]).shape == (info["test_images"], 2) and len(tsne["label"]) == info["test_images"]
        # cost: the logged training-step times (not the test pass) over ceil(train images / batch size)
        cost = a["cost"][name]
        steps = math.ceil(cost["train_images"] / cost["batch_size"])
        expected = np.mean([r["time/train_s"] for r in records]) / steps
        assert cost["seconds_per_iteration"] == pytest.approx(expected, rel=1e-4)
        assert cost["top1"] == pytest.approx(metrics["top1"])
        assert [v for _, v in a["curves"]["test/top1"][name]] == pytest.approx([r["test/top1"] for r in records])

    # ISDM's loss terms are curves; the teacher has no distillation term
    assert isdm in a["curves"]["train/align"] and teacher not in a["curves"]["train/align"]
    # fidelity: the student against its teacher; the teacher is not compared with itself
    assert list(a["fidelity"]) == [isdm] and a["fidelity"][isdm]["teacher"] == teacher
    diff = np.array(a["fidelity"][isdm]["difference"], dtype=float)
    assert diff.shape == (C, C) and np.allclose(np.diag(diff), 0) and 0 <= diff.max() <= 2
    assert a["fidelity"][isdm]["max"] == pytest.approx(diff.max(), abs=1e-5)
    # soft labels: recomputed from the teacher and the trained scaler, they match soft_labels.json
    recorded = {s["index"]: s for s in json.loads((isdm_run / "soft_labels.json").read_text())["samples"]}
    sl = a["soft_labels"][isdm]
    gaps = [s["gap"] for s in recorded.values()]
    assert sl["easiest"]["gap"] == pytest.approx(max(gaps)) and sl["hardest"]["gap"] == pytest.approx(min(gaps))
    for which in ("easiest", "hardest"):
        ex = sl[which]
        assert sum(ex["p_t"]) == pytest.approx(1, abs=1e-4) and sum(ex["q"]) == pytest.approx(1, abs=1e-4)
        assert ex["p_t"][ex["label"]] == pytest.approx(recorded[ex["index"]]["p_t_y"], abs=1e-4)
        assert ex["q"][ex["label"]] == pytest.approx(recorded[ex["index"]]["q_y"], abs=1e-4)
    assert len(sl["scatter"]["p_t_y"]) == len(recorded)
    assert "margin" in a["tsne"][isdm] and "margin" not in a["tsne"][teacher]
    # per-class: the last two runs, with accuracies that agree with their confusion matrices
    pc = a["per_class"]
    assert pc["runs"] == [teacher, isdm]
    for name in names:
        cm = np.array(pc["confusion"][name])
        assert cm.sum() == next(r["test_images"] for r in a["runs"] if r["name"] == name)
        assert pc["accuracy"][name] == pytest.approx(list(100 * np.diag(cm) / cm.sum(1)))


def test_report_page_opens_from_disk_in_a_headless_browser(browser, analysis):
    page = analysis / "report.html"
    text = page.read_text()
    assert "<script" not in text and not re.search(r"(src|href)=\"(https?:)?//", text)  # no network
    srcs = re.findall(r'<img src="([^"]+)"', text)
    files = figure_files(json.loads((analysis / "analysis.json").read_text()))
    assert sorted(srcs) == files  # every figure, relative to the page
    md = (analysis / "report.md").read_text()
    assert sorted(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)) == files
    check = open_page(browser, page)
    assert (check.ready, check.title) == ("complete", "rsdistill analysis")
    assert len(check.images) == len(files) and check.broken_images == []
    assert check.console_errors == []


def test_analyze_refuses_a_folder_that_is_not_an_analysis(tmp_path, teacher_run, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["analyze", str(teacher_run), "--out", str(out)]) == 2
    assert "analysis.json" in capsys.readouterr().err
    assert main(["analyze", str(tmp_path / "missing"), "--out", str(tmp_path / "a")]) == 2
    assert "missing" in capsys.readouterr().err


def test_a_failed_analysis_leaves_no_half_written_folder(tmp_path, teacher_run, capsys, monkeypatch):
    from rsdistill.analysis import figures
    from rsdistill.errors import RsDistillError

    out = tmp_path / "analysis"
    assert main(["analyze", str(teacher_run), "--out", str(out), "--compare", str(teacher_run), "nope"]) == 2
    assert "--compare 'nope'" in capsys.readouterr().err and not out.exists()

    def fail(*args, **kwargs):
        raise RsDistillError("drawing failed")

    monkeypatch.setattr(figures, "cost_figure", fail)  # after similarity.png and tsne.png are written
    assert main(["analyze", str(teacher_run), "--out", str(out)]) == 2
    assert "drawing failed" in capsys.readouterr().err and not out.exists()
