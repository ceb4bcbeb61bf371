"""Command line: parse, build the config, call one function per command.

Every user error ends with a one-line ``error: ...`` naming the file or field and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

from .errors import RsDistillError

log = logging.getLogger("rsdistill")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    from .config import PRESETS

    p.add_argument("--data", metavar="DIR", help="dataset folder (one sub-folder per class), or LAYOUT:DIR for a "
                                                 "known layout (cifar100:DIR, imagenet:DIR, ucm:DIR, aid:DIR, "
                                                 "nwpu:DIR, whu_rs19:DIR, ..., torchgeo:eurosat:DIR, ...); with "
                                                 "--resume: the run's dataset at a new place")
    p.add_argument("--preset", choices=list(PRESETS),
                   help="known dataset layout and class count check (default: folder)")
    p.add_argument("--download", action="store_true",
                   help="fetch CIFAR-100 (torchvision's downloader) or a torchgeo dataset (torchgeo's, with "
                        "checksums) into --data's folder first; needs internet")
    p.add_argument("--out", metavar="RUN", help="run directory to create (a new or empty folder, outside the data)")
    p.add_argument("--config", metavar="FILE", action="append", default=[],
                   help="YAML config (see configs/); repeat to layer files, later ones win")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", action="extend",
                   help="override config fields, e.g. train.epochs=2 data.image_size=32")
    p.add_argument("--seed", type=int, help="seeds the split, the initialisation and the augmentation (default 0)")
    p.add_argument("--split-file", metavar="JSON", help="reuse a split manifest (split.json of another run)")
    p.add_argument("--resume", metavar="RUN", help="continue an interrupted run directory")
    p.add_argument("--deterministic", action="store_true", help="deterministic algorithms (slower on GPU)")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads of the run (train.threads; default: OMP_NUM_THREADS, else the cores "
                        "divided among the rsdistill runs working on this machine)")
    p.add_argument("--overwrite", action="store_true",
                   help="start over a run in --out that has no finished epoch (a failed start)")


def build_parser() -> argparse.ArgumentParser:
    from .config import PRESETS

    parser = argparse.ArgumentParser(
        prog="rsdistill",
        description="Knowledge distillation for remote-sensing scene classification.",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"rsdistill {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("synth", help="generate the embedded synthetic aerial-scene dataset")
    p.add_argument("out", metavar="OUT")
    p.add_argument("--classes", type=int, default=12)
    p.add_argument("--per-class", type=int, default=100)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bands", type=int, default=3, help="bands per image: 3 writes RGB PNGs; N > 3 writes N-band "
                   "16-bit TIFFs (R, G, B, then bands that carry class information, as NIR/SWIR do)")
    from .synth.writer import MIXED_SHARE

    p.add_argument("--mix", type=float, default=0.0, metavar="P",
                   help=f"probability that a scene is mixed: another class covers {MIXED_SHARE[0] * 100:.0f}-"
                   f"{MIXED_SHARE[1] * 100:.0f}%% of it behind a wavy boundary, the label names the main one (mixed land "
                   "use, as in real scene sets; default 0)")

    p = sub.add_parser("train", help="train a model with cross-entropy (a teacher, or a student alone)")
    _add_run_options(p)
    p.add_argument("--model", help="model name (see `rsdistill models`), or timm:NAME")

    p = sub.add_parser("distill", help="distil a teacher into a student")
    _add_run_options(p)
    p.add_argument("--teacher", metavar="RUN_OR_CKPT", help="teacher run directory or checkpoint")
    p.add_argument("--student", help="student model name (default resnet18)")
    p.add_argument("--method", help="distillation method (see `rsdistill methods`)")

    p = sub.add_parser("eval", help="top-1/top-5 and per-class accuracy of a stored model")
    p.add_argument("run", nargs="?", metavar="RUN_OR_CKPT", help="run directory or checkpoint")
    p.add_argument("--data", metavar="DIR", help="dataset folder or LAYOUT:DIR (default: the run's)")
    p.add_argument("--checkpoint", metavar="RUN_OR_CKPT", help="the same as RUN_OR_CKPT (its older spelling)")
    p.add_argument("--preset", choices=list(PRESETS))
    p.add_argument("--split-file", metavar="JSON")
    p.add_argument("--part", default="test", choices=["train", "val", "test"])
    p.add_argument("--image-size", type=int)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", metavar="DIR", help="also write eval.json, per-class CSV and confusion matrix")

    p = sub.add_parser("export", help="export a trained model (ONNX, TorchScript or safetensors), "
                                      "without training-time modules")
    p.add_argument("run", nargs="?", metavar="RUN_OR_CKPT", help="run directory or checkpoint")
    p.add_argument("--checkpoint", metavar="RUN_OR_CKPT", help="the same as RUN_OR_CKPT (its older spelling)")
    p.add_argument("--out", metavar="FILE", required=True,
                   help="model.onnx, model.pt for TorchScript, model.safetensors (+ FILE.json beside it)")
    p.add_argument("--format", choices=["onnx", "torchscript", "safetensors"])
    p.add_argument("--image-size", type=int, help="example input size (default: the training size)")
    p.add_argument("--quantize", choices=["int8"], help="int8 ONNX with onnxruntime's tools (dynamic, or static "
                                                        "with --calibration); the float model is kept as FILE.fp32.onnx")
    p.add_argument("--calibration", metavar="DIR", help="images for static int8 quantisation (searched recursively)")
    p.add_argument("--data", metavar="DIR", help="with --quantize: the run's dataset at a new place (for the test top-1)")

    p = sub.add_parser("predict", help="top-k classes of images with a run, checkpoint or exported model")
    p.add_argument("model", metavar="MODEL_OR_RUN", help="run directory, .pt checkpoint, or exported .onnx / "
                                                         ".safetensors / TorchScript file")
    p.add_argument("images", nargs="+", metavar="IMAGES", help="image files, folders (searched recursively), globs")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--out", metavar="FILE", help="also write the predictions to FILE.csv or FILE.json")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, auto")
    p.add_argument("--bands", type=int, nargs="+", metavar="B", help="the image bands the model reads, in order "
                                                                   "(default: those it was trained on)")
    p.add_argument("--tiff-stretch", choices=["per_image", "none"], help="TIFFs of more than 8 bits "
                                                                        "(default: the run's data.tiff_stretch)")

    p = sub.add_parser("profile", help="parameters, FLOPs, file size and latency, student beside teacher")
    p.add_argument("model", metavar="RUN_OR_MODEL", help="run directory, checkpoint or model name (`rsdistill models`)")
    p.add_argument("--teacher", metavar="RUN_OR_MODEL")
    p.add_argument("--size", type=int, help="input size in px (default: the run's training size, else 224)")
    p.add_argument("--classes", type=int, help="class count of a model given by name (default: the trained "
                                               "model's beside it, else 1000)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 64], metavar="N")
    p.add_argument("--repeats", type=int, default=10, help="timed runs per measurement (the median is reported)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs before each measurement")
    p.add_argument("--device", nargs="+", metavar="DEV", help="cpu, cuda (default: cpu, and cuda where present)")
    p.add_argument("--out", metavar="STEM", help="also write STEM.json and STEM.md")

    p = sub.add_parser("ablate", help="ISDM ablation (article Table 4): the ISDM rows of "
                                      "configs/suites/ablation.yaml over seeds, then the table")
    _add_run_options(p)
    p.add_argument("--teacher", metavar="RUN_OR_CKPT", required=True)
    p.add_argument("--student", help="student model name (default resnet18)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], metavar="N")
    p.add_argument("--rows", nargs="+", metavar="ROW",
                   help="run and tabulate only these rows: isdm wo_is wo_dm wo_both is_fm3 is_fm5 is_fm7 (default all)")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="runs side by side, each with its share of the CPU threads (default 1)")

    p = sub.add_parser("demo", help="the main job on the embedded synthetic scenes (what `make demo` runs): the suite "
                                    "configs/suites/demo.yaml, then its table")
    p.add_argument("--out", metavar="DIR", default="demo-out", help="the suite folder (default demo-out)")
    # None: the suite file's value (the defaults live there, once; the help shows them)
    from .experiments.demo import suite_defaults

    try:
        d = suite_defaults()
    except RsDistillError:  # a broken install: `rsdistill demo` itself says why
        d = {}
    default = lambda key: f" (default {d[key]:g})" if d.get(key) is not None else ""  # noqa: E731
    p.add_argument("--classes", type=int, help="scene classes" + default("classes"))
    p.add_argument("--per-class", type=int, help="images per class" + default("per_class"))
    p.add_argument("--mix", type=float, metavar="P", help="share of mixed scenes (see `rsdistill synth --mix`)" + default("mix"))
    p.add_argument("--image-size", type=int, help="scene size in px" + default("image_size"))
    p.add_argument("--teacher-epochs", type=int, help="teacher epochs" + default("teacher_epochs"))
    p.add_argument("--student-epochs", type=int, help="epochs of each student" + default("student_epochs"))
    p.add_argument("--lr-warmup-epochs", type=float, help="linear lr warm-up" + default("lr_warmup_epochs"))
    p.add_argument("--seed", type=int, help="the seed of the scenes, the teacher and the students" + default("seed"))
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="students trained side by side, each with its share of the CPU threads (default 1)")

    p = sub.add_parser("table", help="compare finished run directories (top-1/top-5, Markdown/CSV/LaTeX)")
    p.add_argument("runs", nargs="+", metavar="RUN")
    p.add_argument("--baseline", metavar="RUN", help="report each run's top-1 difference to this run "
                                                     "(with --group-seeds: to this setting's folder)")
    p.add_argument("--group-seeds", action="store_true",
                   help="one row per setting for runs laid out as SETTING/seed<k>: mean ± std over seeds")
    p.add_argument("--out", metavar="STEM", help="also write STEM.md, STEM.csv and STEM.tex")
    p.add_argument("--title", default="")

    p = sub.add_parser("analyze", help="the article's figures for finished runs (any method, the teacher too), "
                                       "analysis.json with every number, optionally an HTML report")
    p.add_argument("runs", nargs="+", metavar="RUN")
    p.add_argument("--data", metavar="DIR", help="the runs' dataset folder (default: each run's own)")
    p.add_argument("--out", metavar="DIR", required=True, help="folder for the PNGs and analysis.json "
                                                               "(new, empty, or an earlier analysis)")
    p.add_argument("--html", action="store_true", help="also write report.html (static, opens from disk) and report.md")
    p.add_argument("--compare", nargs=2, metavar="RUN", help="the two runs of the per-class figure (default: the last two)")
    p.add_argument("--tsne-seed", type=int, default=0)
    p.add_argument("--tsne-perplexity", type=float, help="default 30, lowered for small test splits")
    p.add_argument("--tsne-max-samples", type=int, default=3000, help="test samples embedded per run, drawn "
                                                                      "with --tsne-seed (0: all)")
    p.add_argument("--device", default="auto")

    p = sub.add_parser("suite", help="a grid of methods x splits x seeds from a suite file (configs/suites/), "
                                     "each cell its own process, then the report")
    p.add_argument("suite", metavar="SUITE.yaml")
    p.add_argument("--out", metavar="DIR", required=True, help="the suite folder (new, empty, or this suite's: "
                                                               "finished cells are skipped, others resumed)")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="cells run side by side (default 1)")
    p.add_argument("--nproc-per-cell", type=int, default=1, metavar="N",
                   help="run each cell data-parallel under torchrun with N processes (one per GPU; with --jobs 1)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", action="extend",
                   help="override fields of the suite file, e.g. seeds=[0] set.train.epochs=2 "
                        "datasets.aid.root=/data/AID")

    p = sub.add_parser("report", help="a suite folder's tables (mean ± std over seeds, Δ to alone and KD): "
                                      "Markdown/CSV/LaTeX, results.json, report.md and report.html")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--epoch", choices=["last", "best"], default="last",
                   help="the accuracy of the last epoch (default) or of the best one (selected on val, else test)")

    p = sub.add_parser("methods", help="list distillation methods and their default hyper-parameters")
    p.add_argument("--classes", type=int, default=30, help="class count for the extra-parameter column")

    p = sub.add_parser("models", help="list model names")
    p.add_argument("--classes", type=int, default=30, help="class count for the parameter column")
    for command in sub.choices.values():  # -q after the command too (SUPPRESS: keeps one given before it)
        command.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                             help="only warnings and errors")
    return parser


def config_from_args(args: argparse.Namespace, command: str):
    from .api import build_run_config

    return build_run_config(
        command, list(args.config), data=args.data, preset=args.preset, split_file=args.split_file, seed=args.seed,
        deterministic=args.deterministic, device=args.device, threads=args.threads,
        model=args.model if command == "train" else args.student,
        teacher=None if command == "train" else args.teacher, method=None if command == "train" else args.method,
        set=args.set)


def _download(args: argparse.Namespace, cfg) -> None:
    """``--download``: fetch the dataset before anything else (CIFAR-100, torchgeo's datasets)."""
    if getattr(args, "download", False):
        from .api import download_dataset

        download_dataset(cfg)


def cmd_run(args: argparse.Namespace) -> int:
    from . import api

    fn = api.train if args.command == "train" else api.distill
    names = {"model": args.model} if args.command == "train" else {
        "student": args.student, "teacher": args.teacher, "method": args.method}
    result = fn(list(args.config), out=args.out, data=args.data, preset=args.preset, seed=args.seed, set=args.set,
                split_file=args.split_file, device=args.device, threads=args.threads,
                deterministic=args.deterministic, resume=args.resume, overwrite=args.overwrite,
                download=args.download, **names)
    from .engine.distributed import from_env

    metrics = result.metrics
    if from_env().is_main:  # under torchrun, process 0 reports for the run
        print(json.dumps({"run": str(args.resume or args.out), "top1": round(metrics["top1"], 2),
                          "top5": round(metrics["top5"], 2), "best_top1": round(metrics["best_top1"], 2),
                          "best_selected_on": metrics.get("best_selected_on"), "epochs": metrics["epochs"]}))
    return 0


# The suffixes that say what a model file holds (export infers --format from them).
SUFFIX_FORMATS = {".onnx": "onnx", ".pt": "torchscript", ".ts": "torchscript", ".safetensors": "safetensors"}


def _warn_suffix(out: str, fmt: str | None) -> None:
    implied = SUFFIX_FORMATS.get(Path(out).suffix.lower())
    if fmt and implied and implied != fmt:
        log.warning("--out '%s' has the suffix of a %s file, but --format %s writes %s: "
                    "other tools will misread it (name it %s)", out, implied, fmt, fmt,
                    Path(out).with_suffix(next(k for k, v in SUFFIX_FORMATS.items() if v == fmt)).name)


def _run_argument(args: argparse.Namespace) -> str:
    """The run of ``eval``/``export``: positional, or ``--checkpoint`` (both: the same one)."""
    if args.run and args.checkpoint and args.run != args.checkpoint:
        raise RsDistillError(f"{args.command}: two runs given ('{args.run}' and --checkpoint '{args.checkpoint}'); "
                             "give one")
    run = args.run or args.checkpoint
    if not run:
        raise RsDistillError(f"{args.command}: give the run directory or checkpoint (rsdistill {args.command} RUN)")
    return run


def cmd_export(args: argparse.Namespace) -> int:
    from .api import export

    run = _run_argument(args)
    _warn_suffix(args.out, args.format)
    result = export(run, args.out, format=args.format, image_size=args.image_size, quantize=args.quantize,
                    calibration=args.calibration, data=args.data)
    meta = result.metadata
    if args.quantize:
        q = meta["quantization"]
        size, acc = q["bytes"], q["test_top1"]
        calibrated = f", {q['calibration_images']} calibration images" if q["mode"] == "static" else ""
        print(f"{meta['model']} -> {args.out} [int8, {q['mode']}{calibrated}]; float model kept as {q['float_model']}")
        print(f"size: {size['fp32'] / 1e6:.2f} MB float -> {size['int8'] / 1e6:.2f} MB int8 "
              f"({size['fp32'] / size['int8']:.2f}x smaller)")
        if acc["int8"] is not None:
            print(f"test top-1 ({acc['images']} images): {acc['fp32']:.2f}% float -> {acc['int8']:.2f}% int8 "
                  f"({acc['int8'] - acc['fp32']:+.2f})")
        else:
            print(acc["note"])
        return 0
    print(f"{meta['model']} ({meta['parameters'] / 1e6:.2f} M params, {len(meta['classes'])} classes) -> "
          f"{args.out} [{meta['format']}], max |diff| vs PyTorch {meta['max_abs_diff_vs_pytorch']:.1e}; "
          f"classes and input format in {args.out}.json")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .api import predict
    from .deploy.predict import format_prediction

    result = predict(args.model, args.images, top_k=args.top_k, batch=args.batch, device=args.device, bands=args.bands,
                     tiff_stretch=args.tiff_stretch, out=args.out, progress=not args.quiet)
    predictions = result.predictions
    for p in predictions:
        print(format_prediction(p))
    failed = result.failed
    for p in failed:
        print(f"error: {p.error}", file=sys.stderr)
    if failed:
        done = len(predictions) - len(failed)
        print(f"{len(failed)} of {len(predictions)} inputs failed" + (f"; the other {done} were predicted" if done else ""),
              file=sys.stderr)
    return 1 if failed else 0


def cmd_profile(args: argparse.Namespace) -> int:
    from .deploy.profile import comparison_table, profile_models, write_profile

    record = profile_models(args.model, args.teacher, args.size, args.classes, args.batches, args.repeats,
                            args.warmup, args.device)
    title = (f"{record['image_size']} px, {record['threads']} threads; latency: median of {args.repeats} runs "
             f"after {args.warmup} warm-up runs")
    print(comparison_table(record, title).to_markdown())
    if args.out:
        print("written: " + ", ".join(str(p) for p in write_profile(record, Path(args.out), title)))
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from .experiments.ablate import ablate

    if not args.out:
        raise RsDistillError("ablate: --out DIR is required")
    if args.seed is not None or args.resume or args.overwrite:
        raise RsDistillError("ablate: use --seeds N [N ...]; re-running the command resumes and skips finished runs")
    bad_seeds = [s for s in args.seeds if not 0 <= s <= 2**32 - 1]
    if bad_seeds:  # checked before the first row runs
        raise RsDistillError(f"ablate --seeds: seeds are 0 to 2^32-1 (got {bad_seeds[0]})")
    args.method = "isdm"
    cfg = config_from_args(args, "distill")
    if cfg.method.name != "isdm":
        raise RsDistillError("ablate: varies ISDM's switches; do not set another method")
    _download(args, cfg)
    table = ablate(cfg, Path(args.out), args.seeds, args.rows, jobs=args.jobs)
    print(table.to_markdown())
    print(f"table written to {Path(args.out) / 'ablation.md'} (and .csv, .tex)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .experiments.demo import DemoOptions, demo

    options = DemoOptions(classes=args.classes, per_class=args.per_class, mix=args.mix, image_size=args.image_size,
                          teacher_epochs=args.teacher_epochs, student_epochs=args.student_epochs,
                          lr_warmup_epochs=args.lr_warmup_epochs, seed=args.seed, progress=not args.quiet)
    table, report = demo(Path(args.out), options, jobs=args.jobs, command=["rsdistill", *sys.argv[1:]])
    print()
    print(table.to_markdown())
    print(f"report: {report}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .api import evaluate

    result = evaluate(_run_argument(args), data=args.data, preset=args.preset, split_file=args.split_file,
                      part=args.part, image_size=args.image_size, device=args.device, out=args.out).metrics
    print(f"{result['model']} on {result['part']} ({result['images']} images): "
          f"top-1 {result['top1']:.2f}%  top-5 {result['top5']:.2f}%")
    worst = sorted(result["per_class"].items(), key=lambda kv: kv[1])[:5]
    print("lowest per-class accuracy: " + ", ".join(f"{k} {v:.1f}%" for k, v in worst))
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from .synth import generate_dataset

    names = generate_dataset(args.out, classes=args.classes, per_class=args.per_class, size=args.size,
                             seed=args.seed, progress=not args.quiet, bands=args.bands, mix=args.mix)
    print(f"{args.out}: {len(names)} classes x {args.per_class} images at {args.size} px"
          f"{f', {args.bands} bands' if args.bands != 3 else ''}"
          f"{f', {args.mix:.0%} mixed' if args.mix else ''} "
          f"({', '.join(names)})")
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    from .reports.runs_table import runs_table, seed_groups_table

    runs = [Path(r) for r in args.runs]
    if args.group_seeds:
        table = seed_groups_table(runs, args.baseline, args.title)
    else:
        table = runs_table(runs, Path(args.baseline) if args.baseline else None, args.title)
    print(table.to_markdown())
    if args.out:
        paths = table.write(Path(args.out), ("md", "csv", "tex"))
        print("written: " + ", ".join(str(p) for p in paths))
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from .analysis.analyze import AnalyzeSettings, analyze

    settings = AnalyzeSettings(tsne_seed=args.tsne_seed, tsne_perplexity=args.tsne_perplexity,
                               tsne_max_samples=args.tsne_max_samples or None,
                               compare=tuple(args.compare) if args.compare else None, device=args.device)
    result = analyze(args.runs, args.out, args.data, args.html, settings)
    out = Path(args.out)
    for r in result["runs"]:
        sim = result["similarity"][r["name"]]["mean_off_diagonal"]
        fid = result["fidelity"].get(r["name"])
        print(f"{r['name']}: top-1 {r['test_top1']:.2f}% on {r['test_images']} test images, mean off-diagonal "
              f"similarity {'n/a' if sim is None else f'{sim:.3f}'}"
              + (f", fidelity max {fid['max']:.2f} mean {fid['mean']:.2f}" if fid else ""))
    files = [v for v in result["figures"].values() if isinstance(v, str)]
    files += [v for v in result["figures"].get("soft_labels", {}).values()]
    print(f"written to {out}: analysis.json, {', '.join(files)}" + (", report.html, report.md" if args.html else ""))
    return 0


def cmd_suite(args: argparse.Namespace) -> int:
    from .api import suite

    try:
        outcome = suite(args.suite, args.out, jobs=args.jobs, set=args.set, nproc_per_cell=args.nproc_per_cell,
                        verbose=not args.quiet)
    except KeyboardInterrupt:
        print(f"interrupted; run the same command again to resume (finished cells are kept in {args.out})",
              file=sys.stderr)
        return 130
    print(f"{len(outcome.finished)} cells finished, {len(outcome.failed)} failed; report: {outcome.report}")
    for cid, why in outcome.failed.items():
        print(f"failed: {cid}: {why}", file=sys.stderr)
    return 0 if outcome.ok else 1


def cmd_report(args: argparse.Namespace) -> int:
    from .api import report

    page = report(Path(args.dir), epoch=args.epoch)
    print(f"tables in {Path(args.dir) / 'tables'}, numbers in {Path(args.dir) / 'results.json'}; report: {page}")
    return 0


def _positive_classes(args: argparse.Namespace) -> None:
    if args.classes < 1:
        raise RsDistillError(f"{args.command} --classes: must be at least 1 (got {args.classes})")


def cmd_methods(args: argparse.Namespace) -> int:
    from .distillers import registry

    _positive_classes(args)
    names = registry.names()
    for name in [n for n in ("isdm", "kd") if n in names] + [n for n in names if n not in ("isdm", "kd")]:
        cls = registry.get(name)
        cfg = cls.Config(name=name)
        params = {k: "auto" if v is None else v for k, v in cfg.model_dump().items() if k != "name"}
        extra = cls.extra_parameter_count(cfg, args.classes)
        extra_s = "depends on the model pair" if extra is None else f"{extra:,}"
        print(f"{name:10s} {cls.summary}")
        print(f"{'':10s}   defaults: " + ", ".join(f"{k}={v}" for k, v in params.items()))
        print(f"{'':10s}   trainable parameters besides the student at {args.classes} classes: {extra_s}")
        if cls.needs:
            print(f"{'':10s}   batches carry: {', '.join(sorted(cls.needs))}")
    print("auto: resolved when a run starts and written to its config.yaml (warm-ups: 10 % of the "
          "epochs; per-pair weights and stages: see docs/methods/)")
    if registry.ALIASES:
        print("shorthands: " + ", ".join(
            f"{a} = {m} with {', '.join(f'{k}={v}' for k, v in o.items())}" for a, (m, o) in registry.ALIASES.items()))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .models import MODELS, build_model, count_parameters

    _positive_classes(args)
    for name, spec in MODELS.items():
        n = count_parameters(build_model(name, args.classes))
        print(f"{name:13s} {spec.family:8s} {n / 1e6:6.2f} M params at {args.classes} classes  {spec.description}")
    print("timm:NAME     any timm model (random initialisation or model.weights=FILE; "
          "pip install 'rsdistill[timm]')")
    print("weights:      model.weights=FILE, imagenet (torchvision's default weights; timm's pretrained tag) or "
          "torchgeo:<Enum.MEMBER>; data.bands=all or [..] for N input bands")
    return 0


COMMANDS = {"synth": cmd_synth, "train": cmd_run, "distill": cmd_run, "eval": cmd_eval,
            "ablate": cmd_ablate, "demo": cmd_demo, "export": cmd_export, "table": cmd_table,
            "methods": cmd_methods, "models": cmd_models, "predict": cmd_predict, "profile": cmd_profile,
            "analyze": cmd_analyze, "suite": cmd_suite, "report": cmd_report}


def setup_logging(quiet: bool) -> None:
    logger = logging.getLogger("rsdistill")
    console = next((h for h in logger.handlers if getattr(h, "_rsdistill_console", False)), None)
    if console is None:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("%(message)s"))
        console._rsdistill_console = True  # type: ignore[attr-defined]
        logger.addHandler(console)
    else:  # to the stderr of now (replaced since, e.g. by a test's capture): never a closed stream
        console.stream = sys.stderr
    # --quiet silences the console only: a run's train.log always gets the full record.
    console.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    warnings.showwarning = _show_warning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A library's warning as one line of the log (no source file and line of the library's code;
    train.log keeps it too)."""
    text = str(message).strip().splitlines()
    log.warning("%s: %s", category.__name__, text[0] if text else "")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.quiet)
    try:
        return COMMANDS[args.command](args)
    except RsDistillError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # not caught where it happened: still one line, naming the path
        where = f"'{e.filename}': " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted{_continue_hint(args)}", file=sys.stderr)
        return 130


def _continue_hint(args: argparse.Namespace) -> str:
    """How to go on after Ctrl-C: --resume only where a run was started (its config.yaml exists;
    a start interrupted before that leaves no run folder behind)."""
    if args.command in ("train", "distill"):
        run = getattr(args, "resume", None) or getattr(args, "out", None)
        from .runs.folder import RunDir

        if run and RunDir(run).config.is_file():
            return f"; continue with --resume {run}"
        return "; nothing was started: run the command again"
    if args.command in ("ablate", "demo"):
        return "; run the same command again to continue (finished runs are kept)"
    return ""


if __name__ == "__main__":
    sys.exit(main())
