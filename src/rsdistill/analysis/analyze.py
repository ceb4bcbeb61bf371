"""``rsdistill analyze``: the article's figures for finished runs of any method (the teacher's
included), ``analysis.json`` with every number drawn, and optionally one static report page.

Figures (PNG, in ``--out``):
  similarity.png          inter-class similarity of logits, one panel per run (Fig. 4)
  soft_labels_<run>.png   ISDM runs: soft labels before/after instance-level scaling (Fig. 5)
  tsne.png                t-SNE of pooled features, one panel per run; ISDM also by margin (Fig. 6)
  fidelity.png            |corr(teacher) - corr(student)| per run that has a teacher (Fig. 7)
  cost.png                training time per iteration against top-1 (Fig. 8)
  per_class.png           per-class accuracy and confusion matrices of two runs
  curves.png              test top-1 and each loss term per epoch, all runs per quantity
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..engine.checkpoint import resolve_checkpoint
from ..engine.seeding import resolve_device
from ..errors import RsDistillError
from ..runs.claim import check_output_folder, check_outside_data
from ..runs.folder import SOFT_LABELS, RunDir
from ..io import atomic_write_json
from ..reports.html import ReportSection, write_html, write_markdown
from ..reports.runs_table import run_labels
from ..reports.tables import Table
from . import figures
from .compare import changed_most, confusion_matrix, per_class_accuracy
from .curves import epoch_curves, seconds_per_iteration
from .embeddings import default_perplexity, subsample, tsne_2d
from .fidelity import correlation_difference, softmax
from .outputs import LoadedRun, RunLoader, distiller_of, images, same_checkpoint, soft_label_pair, teacher_checkpoint
from .similarity import inter_class_similarity, mean_off_diagonal
from .soft_labels import easiest_and_hardest, read_soft_labels, target_scatter

log = logging.getLogger("rsdistill")

CAPTIONS = {
    "similarity": "Rows: true classes, columns: class centres of the logits. A darker off-diagonal means "
                  "classes the model keeps apart; compare the mean off-diagonal similarity (lower is better).",
    "soft_labels": "Red bars: the target class. Instance-level scaling should change the hard sample's label "
                   "more than the easy one's; in the scatter, points above the diagonal were sharpened, "
                   "below it softened.",
    "tsne": "Tighter, better separated colour clusters mean more discriminative embeddings; in the margin "
            "panels, look for large margins on the clusters' cores and small or negative ones at their borders.",
    "fidelity": "Darker cells are class pairs whose correlation the student gets wrong: a smaller max and "
                "mean mean a student more faithful to its teacher.",
    "cost": "Up and to the left is better: more top-1 for less training time per iteration.",
    "per_class": "Bars compare the two runs class by class; the classes that changed most are in red, "
                 "and the confusion matrices show where their errors went.",
    "curves": "Test top-1 and each loss term by epoch: look for the run that keeps improving and for loss "
              "terms that stall or blow up.",
}


@dataclass
class AnalyzeSettings:
    tsne_seed: int = 0
    tsne_perplexity: float | None = None  # None: 30, lowered for small test splits
    tsne_max_samples: int | None = 3000  # test samples embedded per run (None: all)
    compare: tuple[str, str] | None = None  # the two runs of the per-class figure (default: the last two)
    batch_size: int = 128
    device: str = "auto"


def analyze(run_dirs: list[str | Path], out: str | Path, data_root: str | Path | None = None, html: bool = False,
            settings: AnalyzeSettings | None = None) -> dict[str, Any]:
    """Analyse the runs into ``out`` (a new or empty folder, or an earlier analysis); returns what
    ``analysis.json`` holds."""
    settings = settings or AnalyzeSettings()
    out = Path(out)
    if not run_dirs:
        raise RsDistillError("analyze: give at least one run directory")
    run_dirs = [Path(r) for r in run_dirs]
    resolved = [r.resolve() for r in run_dirs]
    if len(set(resolved)) != len(resolved):
        raise RsDistillError("analyze: a run directory is given twice")
    check_output_folder(out, data_root, "analysis.json")
    device = resolve_device(settings.device)
    loader = RunLoader(data_root, device, settings.batch_size)
    runs = [loader.load(d, n) for d, n in zip(run_dirs, run_labels(run_dirs))]
    for r in runs:
        check_outside_data(out, r.data.cfg.root)
        if r.class_names != runs[0].class_names:
            raise RsDistillError(f"runs '{runs[0].dir}' and '{r.dir}' were trained on different classes: "
                                 "analyse runs of one dataset together")
    pair = _pair(runs, settings.compare)  # a wrong --compare stops here, before anything is drawn
    existed = out.exists()
    before = set(out.iterdir()) if existed else set()
    out.mkdir(parents=True, exist_ok=True)
    try:
        result = _analyze(runs, loader, out, pair, html, settings, data_root, device)
    except BaseException:
        # A failed analysis leaves no half-written folder behind: the next try would refuse it.
        for p in set(out.iterdir()) - before:
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        if not existed:
            out.rmdir()
        raise
    for n in result["notes"]:
        log.info("note: %s", n)
    return result


def _analyze(runs: list[LoadedRun], loader: RunLoader, out: Path, pair: tuple[LoadedRun, LoadedRun] | None,
             html: bool, settings: AnalyzeSettings, data_root, device: torch.device) -> dict[str, Any]:
    class_names = runs[0].class_names
    notes: list[str] = []
    outputs = {r.name: loader.outputs(r.model, r.data) for r in runs}
    result: dict[str, Any] = {
        "classes": class_names,
        "runs": [{"name": r.name, "dir": str(r.dir), "method": r.method, "model": r.record["arch"],
                  "checkpoint": r.record["file"], "test_images": len(outputs[r.name].labels),
                  "test_top1": _num(100.0 * float((outputs[r.name].logits.argmax(1) == outputs[r.name].labels).mean()))}
                 for r in runs],
    }
    figs: dict[str, Any] = {}

    # 1. inter-class similarity
    sims = {r.name: inter_class_similarity(outputs[r.name].logits, outputs[r.name].labels, len(class_names)) for r in runs}
    mean_off = {k: mean_off_diagonal(m) for k, m in sims.items()}
    result["similarity"] = {k: {"matrix": _num(m), "mean_off_diagonal": _num(mean_off[k])} for k, m in sims.items()}
    figs["similarity"] = figures.similarity_figure(out / "similarity.png", sims, mean_off, class_names).name

    # 2. ISDM soft labels, 3. embeddings (margins of ISDM runs on the test split come with 2)
    margins: dict[str, np.ndarray] = {}
    result["soft_labels"], figs["soft_labels"] = {}, {}
    for r in runs:
        if r.method != "isdm":
            continue
        fig, numbers, m = _soft_labels(r, loader, out, class_names, notes)
        if numbers is not None:
            result["soft_labels"][r.name] = numbers
            figs["soft_labels"][r.name] = fig
        if m is not None:
            margins[r.name] = m
    result["tsne"], panels = _embeddings(runs, outputs, margins, settings)
    figs["tsne"] = figures.tsne_figure(out / "tsne.png", panels, class_names).name

    # 4. fidelity
    result["fidelity"] = _fidelity(runs, loader, outputs, notes)
    if result["fidelity"]:
        fid = result["fidelity"]
        figs["fidelity"] = figures.fidelity_figure(
            out / "fidelity.png", {k: np.array(v["difference"], dtype=float) for k, v in fid.items()},
            {k: v["max"] for k, v in fid.items()}, {k: v["mean"] for k, v in fid.items()},
            {k: v["teacher"] for k, v in fid.items()}, class_names).name
    else:
        notes.append("fidelity: no run has a teacher to compare with (distillation runs name theirs in config.yaml)")

    # 5. cost against accuracy, 7. curves (both from the runs' logs)
    logs = {r.name: RunDir(r.dir).read_epochs().require("the run's epoch log") for r in runs}
    result["cost"] = {r.name: {"method": r.method, "top1": _num(r.metrics.get("top1")),
                               "seconds_per_iteration": _num(seconds_per_iteration(
                                   logs[r.name], len(r.data.split.train), r.config.train.batch_size)),
                               "batch_size": r.config.train.batch_size, "train_images": len(r.data.split.train)}
                      for r in runs}
    figs["cost"] = figures.cost_figure(out / "cost.png", [
        figures.CostPoint(k, v["method"], 1000 * _float(v["seconds_per_iteration"]), _float(v["top1"]))
        for k, v in result["cost"].items()]).name
    curves: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for name, records in logs.items():
        for quantity, pts in epoch_curves(records).items():
            curves.setdefault(quantity, {})[name] = pts
    result["curves"] = {q: {n: [[e, _num(v)] for e, v in pts] for n, pts in per.items()} for q, per in curves.items()}
    if curves:
        figs["curves"] = figures.curves_figure(out / "curves.png", curves).name
    else:
        notes.append("curves: no run has per-epoch records (metrics.jsonl)")

    # 6. per-class comparison
    if pair is None:
        notes.append("per-class comparison: needs two runs")
    else:
        numbers = _per_class(pair, outputs, class_names)
        if numbers is None:
            notes.append(f"per-class comparison: runs '{pair[0].name}' and '{pair[1].name}' have different test splits")
        else:
            result["per_class"] = numbers
            figs["per_class"] = figures.per_class_figure(
                out / "per_class.png", (pair[0].name, pair[1].name), class_names,
                (np.array(numbers["accuracy"][pair[0].name], dtype=float), np.array(numbers["accuracy"][pair[1].name], dtype=float)),
                (np.array(numbers["confusion"][pair[0].name]), np.array(numbers["confusion"][pair[1].name])),
                [c["class"] for c in numbers["changed_most"]]).name

    result["figures"] = figs
    result["notes"] = notes
    result["settings"] = _settings(runs, data_root, device, settings, len(next(iter(outputs.values())).labels))
    atomic_write_json(out / "analysis.json", result)
    if html:
        sections = report_sections(result, out)
        write_html(out / "report.html", "rsdistill analysis", result["settings"], sections)
        write_markdown(out / "report.md", "rsdistill analysis", result["settings"], sections)
    return result


# ---------------------------------------------------------------------------------------- parts
def _soft_labels(run: LoadedRun, loader: RunLoader, out: Path, class_names: list[str], notes: list[str]):
    """(figure file, numbers, test-split margins); parts that need the teacher are skipped with a
    note when it cannot be loaded."""
    file = RunDir(run.dir).soft_labels
    if not file.is_file():
        notes.append(f"soft labels: ISDM run '{run.name}' has no {SOFT_LABELS} (written when a run finishes)")
        return None, None, None
    data = read_soft_labels(file)
    samples = data["samples"]
    p_t_y, q_y = target_scatter(samples)
    numbers: dict[str, Any] = {"T": data.get("T"), "scatter": {"p_t_y": p_t_y, "q_y": q_y,
                                                               "label": [int(s["label"]) for s in samples]}}
    examples: list[figures.SoftLabelExample] = []
    margins = None
    try:
        if not run.config.teacher.checkpoint:
            raise RsDistillError("config.yaml names none")
        teacher, _ = loader.teacher(run.config.teacher.checkpoint)
    except RsDistillError as e:
        notes.append(f"soft labels of '{run.name}': bar charts and margins skipped, the teacher does not load ({e})")
        teacher = None
    if teacher is not None:
        distiller = distiller_of(run, teacher)
        chosen = easiest_and_hardest(samples)
        # The record's path names the image (its index is its place in the run's training loader).
        paths = [s.get("path") or run.data.split.train[int(s["index"])] for s in chosen]
        for title, s, path, image in zip(("easiest", "hardest"), chosen, paths, images(run.data, paths)):
            p_t, q = soft_label_pair(distiller, image, int(s["label"]))
            numbers[title] = {"index": int(s["index"]), "path": path, "label": int(s["label"]),
                              "class": class_names[int(s["label"])], "gap": _num(s["gap"]),
                              "p_t": _num(p_t), "q": _num(q)}
            examples.append(figures.SoftLabelExample(title, image.permute(1, 2, 0).numpy(), int(s["label"]),
                                                     float(s["gap"]), p_t, q))
        records = distiller.soft_label_records(run.data.eval_loader("test", loader.batch_size), loader.device)
        margins = records["m"].double().numpy()
    name = f"soft_labels_{_slug(run.name)}.png"
    figures.soft_labels_figure(out / name, run.name, class_names, examples, p_t_y, q_y, numbers["scatter"]["label"])
    return name, numbers, margins


def _embeddings(runs: list[LoadedRun], outputs, margins: dict[str, np.ndarray], settings: AnalyzeSettings):
    numbers: dict[str, Any] = {}
    panels: list[figures.EmbeddingPanel] = []
    for r in runs:
        o = outputs[r.name]
        idx = subsample(len(o.labels), settings.tsne_max_samples, settings.tsne_seed)
        features, labels = o.features[idx], o.labels[idx]
        perplexity = settings.tsne_perplexity or default_perplexity(len(features))
        pts = tsne_2d(features, settings.tsne_seed, perplexity)
        numbers[r.name] = {"seed": settings.tsne_seed, "perplexity": _num(min(perplexity, len(features) - 1.0)),
                           "points": _num(pts), "label": labels.tolist()}
        if len(idx) < len(o.labels):  # which test samples (in split order) the points are
            numbers[r.name]["test_indices"] = idx.tolist()
        panels.append(figures.EmbeddingPanel(f"{r.name} ({r.record['arch']})", pts, labels, "class"))
        if r.name in margins:
            m = margins[r.name][idx]
            numbers[r.name]["margin"] = _num(m)
            panels.append(figures.EmbeddingPanel(f"{r.name}: ISDM margin m", pts, m, "margin"))
    return numbers, panels


def _fidelity(runs: list[LoadedRun], loader: RunLoader, outputs, notes: list[str]) -> dict[str, Any]:
    """Each distillation run against its own teacher; a run without one (a student trained alone)
    against the runs' teacher when they share exactly one; the teacher itself is left out."""
    own = {r.name: teacher_checkpoint(r) for r in runs}
    shared = {_checkpoint_key(t) for t in own.values() if t}
    common = next(iter(shared)) if len(shared) == 1 else None
    numbers: dict[str, Any] = {}
    for r in runs:
        t = own[r.name] or common
        if not t or same_checkpoint(r.dir, t):
            continue
        try:
            teacher, record = loader.teacher(t)
        except RsDistillError as e:
            notes.append(f"fidelity of '{r.name}': skipped, its teacher does not load ({e})")
            continue
        t_out = loader.outputs(teacher, r.data)
        d = correlation_difference(softmax(t_out.logits), softmax(outputs[r.name].logits))
        numbers[r.name] = {"teacher": _teacher_label(runs, record), "teacher_checkpoint": record["file"],
                           "difference": _num(d.matrix), "max": _num(d.max), "mean": _num(d.mean)}
    return numbers


def _checkpoint_key(path: str) -> str:
    """One key per checkpoint file, whether a run names its teacher's folder or its file."""
    try:
        return str(resolve_checkpoint(path).resolve())
    except RsDistillError:
        return str(Path(path).resolve())


def _teacher_label(runs: list[LoadedRun], record: dict[str, Any]) -> str:
    for r in runs:
        if same_checkpoint(r.dir, record["file"]):
            return r.name
    return f"{record['arch']} teacher"


def _pair(runs: list[LoadedRun], compare: tuple[str, str] | None) -> tuple[LoadedRun, LoadedRun] | None:
    if compare is not None:
        found = []
        for c in compare:
            match = [r for r in runs if r.dir.resolve() == Path(c).resolve() or r.name == c]
            if not match:
                raise RsDistillError(f"--compare '{c}' is not one of the analysed runs")
            found.append(match[0])
        return found[0], found[1]
    return (runs[-2], runs[-1]) if len(runs) >= 2 else None


def _per_class(pair: tuple[LoadedRun, LoadedRun], outputs, class_names: list[str]) -> dict[str, Any] | None:
    a, b = pair
    if list(a.data.split.test) != list(b.data.split.test):
        return None
    C = len(class_names)
    cms = {r.name: confusion_matrix(outputs[r.name].labels, outputs[r.name].logits.argmax(1), C) for r in pair}
    accs = {k: per_class_accuracy(cm) for k, cm in cms.items()}
    changed = changed_most(accs[a.name], accs[b.name], class_names, k=min(3, C))
    return {"runs": [a.name, b.name], "accuracy": {k: _num(v) for k, v in accs.items()},
            "confusion": {k: cm.tolist() for k, cm in cms.items()},
            "changed_most": [{"class": c.name, a.name: _num(c.before), b.name: _num(c.after), "delta": _num(c.delta)}
                             for c in changed]}


def _settings(runs: list[LoadedRun], data_root, device: torch.device, s: AnalyzeSettings, n_test: int) -> dict[str, Any]:
    return {"runs": {r.name: str(r.dir) for r in runs},
            "data": str(data_root) if data_root else "each run's own dataset folder",
            "split": "each run's test split (split.json)", "device": str(device),
            "tsne": {"seed": s.tsne_seed, "max_samples": s.tsne_max_samples,
                     "perplexity": s.tsne_perplexity or
                     f"auto ({default_perplexity(min(n_test, s.tsne_max_samples or n_test)):g})"}}


# ---------------------------------------------------------------------------------------- report
def report_sections(result: dict[str, Any], out: Path) -> list[ReportSection]:
    """The report page's sections: the runs table, then each figure with its caption."""
    table = Table(["run", "model", "method", "test images", "top-1 (%)", "mean off-diag. similarity",
                   "fidelity max", "fidelity mean", "ms / iteration"])
    for r in result["runs"]:
        n, fid = r["name"], result["fidelity"].get(r["name"], {})
        spi = _float(result["cost"][n]["seconds_per_iteration"])
        table.add(n, r["model"], r["method"], r["test_images"], _float(r["test_top1"]),
                  f"{_float(result['similarity'][n]['mean_off_diagonal']):.3f}",
                  fid.get("max"), fid.get("mean"), spi * 1000)
    sections = [ReportSection("Runs", "Top-1 recomputed here on each run's test split; fidelity is against the "
                                      "run's teacher.", table.to_markdown())]
    figs = result["figures"]
    sections.append(ReportSection("Inter-class similarity (Fig. 4)", CAPTIONS["similarity"], image=out / figs["similarity"]))
    for name, file in figs.get("soft_labels", {}).items():
        sections.append(ReportSection(f"Soft labels before and after instance-level scaling: {name} (Fig. 5)",
                                      CAPTIONS["soft_labels"], image=out / file))
    sections.append(ReportSection("t-SNE of student embeddings (Fig. 6)", CAPTIONS["tsne"], image=out / figs["tsne"]))
    if "fidelity" in figs:
        sections.append(ReportSection("Distillation fidelity (Fig. 7)", CAPTIONS["fidelity"], image=out / figs["fidelity"]))
    sections.append(ReportSection("Cost against accuracy (Fig. 8)", CAPTIONS["cost"], image=out / figs["cost"]))
    if "per_class" in figs:
        pc = result["per_class"]
        a, b = pc["runs"]
        t = Table(["class", f"{a} (%)", f"{b} (%)", "change"], title="Classes that changed most")
        for c in pc["changed_most"]:
            t.add(c["class"], _float(c[a]), _float(c[b]), f"{_float(c['delta']):+.2f}")
        sections.append(ReportSection(f"Per-class comparison: {a} vs {b}", CAPTIONS["per_class"],
                                      t.to_markdown() if pc["changed_most"] else None, out / figs["per_class"]))
    if "curves" in figs:
        sections.append(ReportSection("Training curves", CAPTIONS["curves"], image=out / figs["curves"]))
    if result["notes"]:
        sections.append(ReportSection("Notes", "What could not be drawn, and why.",
                                      "\n".join(f"- {n}" for n in result["notes"])))
    return sections


# ---------------------------------------------------------------------------------------- helpers
def _num(x: Any) -> Any:
    """JSON-ready numbers: floats rounded to 6 decimals, NaN and infinities as null."""
    if isinstance(x, np.ndarray):
        return _num(x.tolist())
    if isinstance(x, (list, tuple)):
        return [_num(v) for v in x]
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return round(x, 6) if np.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def _float(x: Any) -> float:
    return float("nan") if x is None else float(x)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "run"
