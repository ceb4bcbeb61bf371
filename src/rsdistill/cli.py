"""Command line: parse, build the config, call one function per command.

Every user error ends with a one-line ``error: ...`` naming the file or field and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from .errors import RsDistillError

log = logging.getLogger("rsdistill")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="DIR", help="dataset folder (one sub-folder per class); with --resume: "
                                                 "the run's dataset at a new place")
    p.add_argument("--preset", choices=["folder", "ucm", "aid", "nwpu"],
                   help="known dataset layout and class count check (default: folder)")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rsdistill",
        description="Knowledge distillation for remote-sensing scene classification.",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("synth", help="generate the embedded synthetic aerial-scene dataset")
    p.add_argument("out", metavar="OUT")
    p.add_argument("--classes", type=int, default=12)
    p.add_argument("--per-class", type=int, default=100)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("train", help="train a model with cross-entropy (a teacher, or a student alone)")
    _add_run_options(p)
    p.add_argument("--model", help="model name (see `rsdistill models`)")

    p = sub.add_parser("distill", help="distil a teacher into a student")
    _add_run_options(p)
    p.add_argument("--teacher", metavar="RUN_OR_CKPT", help="teacher run directory or checkpoint")
    p.add_argument("--student", help="student model name (default resnet18)")
    p.add_argument("--method", help="distillation method (see `rsdistill methods`)")

    p = sub.add_parser("eval", help="top-1/top-5 and per-class accuracy of a stored model")
    p.add_argument("--data", metavar="DIR", help="dataset folder (default: the run's)")
    p.add_argument("--checkpoint", metavar="RUN_OR_CKPT", required=True)
    p.add_argument("--preset", choices=["folder", "ucm", "aid", "nwpu"])
    p.add_argument("--split-file", metavar="JSON")
    p.add_argument("--part", default="test", choices=["train", "val", "test"])
    p.add_argument("--image-size", type=int)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", metavar="DIR", help="also write eval.json, per-class CSV and confusion matrix")

    p = sub.add_parser("export", help="export a trained model (ONNX or TorchScript), without training-time modules")
    p.add_argument("--checkpoint", metavar="RUN_OR_CKPT", required=True)
    p.add_argument("--out", metavar="FILE", required=True, help="model.onnx, or model.pt for TorchScript")
    p.add_argument("--format", choices=["onnx", "torchscript"])
    p.add_argument("--image-size", type=int, help="example input size (default: the training size)")

    p = sub.add_parser("ablate", help="ISDM ablation (article Table 4): five rows over seeds, then the table")
    _add_run_options(p)
    p.add_argument("--teacher", metavar="RUN_OR_CKPT", required=True)
    p.add_argument("--student", help="student model name (default resnet18)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], metavar="N")
    p.add_argument("--rows", nargs="+", metavar="ROW",
                   help="run and tabulate only these rows: isdm wo_is wo_dm wo_both is_fm3 is_fm5 is_fm7 (default all)")

    p = sub.add_parser("demo", help="the main job on the embedded synthetic scenes (what `make demo` runs)")
    p.add_argument("--out", metavar="DIR", default="demo-out")
    from .experiments.demo import DemoSettings  # the defaults live there, once

    d = DemoSettings()
    p.add_argument("--classes", type=int, default=d.classes)
    p.add_argument("--per-class", type=int, default=d.per_class)
    p.add_argument("--image-size", type=int, default=d.image_size)
    p.add_argument("--teacher-epochs", type=int, default=d.teacher_epochs)
    p.add_argument("--student-epochs", type=int, default=d.student_epochs)
    p.add_argument("--lr-warmup-epochs", type=float, default=d.lr_warmup_epochs)
    p.add_argument("--seed", type=int, default=d.seed)

    p = sub.add_parser("table", help="compare finished run directories (top-1/top-5, Markdown/CSV/LaTeX)")
    p.add_argument("runs", nargs="+", metavar="RUN")
    p.add_argument("--baseline", metavar="RUN", help="report each run's top-1 difference to this run "
                                                     "(with --group-seeds: to this setting's folder)")
    p.add_argument("--group-seeds", action="store_true",
                   help="one row per setting for runs laid out as SETTING/seed<k>: mean ± std over seeds")
    p.add_argument("--out", metavar="STEM", help="also write STEM.md, STEM.csv and STEM.tex")
    p.add_argument("--title", default="")

    p = sub.add_parser("methods", help="list distillation methods and their default hyper-parameters")
    p.add_argument("--classes", type=int, default=30, help="class count for the extra-parameter column")

    p = sub.add_parser("models", help="list model names")
    p.add_argument("--classes", type=int, default=30, help="class count for the parameter column")
    return parser


def config_from_args(args: argparse.Namespace, command: str):
    from .config import build_config, deep_merge, load_yaml, parse_set

    file_layer: dict[str, Any] = {}
    for file in args.config:
        file_layer = deep_merge(file_layer, load_yaml(file))
    flags: dict[str, Any] = {}
    data: dict[str, Any] = {}
    if args.data:
        data["root"] = args.data
    if args.preset:
        data["preset"] = args.preset
    if args.split_file:
        data["split_file"] = args.split_file
    if data:
        flags["data"] = data
    if args.seed is not None:
        flags["seed"] = args.seed
    train: dict[str, Any] = {}
    if args.deterministic:
        train["deterministic"] = True
    if args.device:
        train["device"] = args.device
    if train:
        flags["train"] = train
    if command == "train":
        if args.model:
            flags["model"] = {"name": args.model}
        flags["method"] = {"name": "ce"}
    else:
        if args.student:
            flags["model"] = {"name": args.student}
        if args.teacher:
            flags["teacher"] = {"checkpoint": args.teacher}
        if args.method:
            flags["method"] = {"name": args.method}
        elif "method" not in file_layer:
            flags["method"] = {"name": "kd"}
    overrides = parse_set(args.set)
    cfg = build_config(file_layer, flags, overrides, source=", ".join(args.config) or "command line")
    if command == "train" and cfg.method.name != "ce":
        raise RsDistillError("train: trains with cross-entropy only; use `rsdistill distill --method ...`")
    if command == "distill" and cfg.method.name == "ce":
        raise RsDistillError("distill: method 'ce' has no teacher; use `rsdistill train`")
    return cfg


def cmd_run(args: argparse.Namespace) -> int:
    from .experiments.single import run

    if args.resume:
        # --data with --resume: the run's dataset has moved there (its fingerprint is checked).
        metrics = run(None, args.resume, resume=True, data_root=args.data)
        out = args.resume
    else:
        if not args.out:
            raise RsDistillError(f"{args.command}: --out RUN is required")
        cfg = config_from_args(args, args.command)
        metrics = run(cfg, args.out)
        out = args.out
    print(json.dumps({"run": str(out), "top1": round(metrics["top1"], 2), "top5": round(metrics["top5"], 2),
                      "best_top1": round(metrics["best_top1"], 2),
                      "best_selected_on": metrics.get("best_selected_on"), "epochs": metrics["epochs"]}))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .deploy.export import export

    meta = export(args.checkpoint, args.out, args.format, args.image_size)
    print(f"{meta['model']} ({meta['parameters'] / 1e6:.2f} M params, {len(meta['classes'])} classes) -> "
          f"{args.out} [{meta['format']}], max |diff| vs PyTorch {meta['max_abs_diff_vs_pytorch']:.1e}; "
          f"classes and input format in {args.out}.json")
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from .experiments.ablate import ablate

    if not args.out:
        raise RsDistillError("ablate: --out DIR is required")
    if args.seed is not None or args.resume:
        raise RsDistillError("ablate: use --seeds N [N ...]; re-running the command resumes and skips finished runs")
    args.method = "isdm"
    cfg = config_from_args(args, "distill")
    if cfg.method.name != "isdm":
        raise RsDistillError("ablate: varies ISDM's switches; do not set another method")
    table = ablate(cfg, Path(args.out), args.seeds, args.rows)
    print(table.to_markdown())
    print(f"table written to {Path(args.out) / 'ablation.md'} (and .csv, .tex)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .experiments.demo import DemoSettings, demo

    settings = DemoSettings(classes=args.classes, per_class=args.per_class, image_size=args.image_size,
                            teacher_epochs=args.teacher_epochs, student_epochs=args.student_epochs,
                            lr_warmup_epochs=args.lr_warmup_epochs,
                            seed=args.seed, progress=not args.quiet)
    table, report = demo(Path(args.out), settings)
    print()
    print(table.to_markdown())
    print(f"report: {report}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .experiments.single import evaluate

    result = evaluate(args.checkpoint, args.data, preset=args.preset, split_file=args.split_file,
                      part=args.part, image_size=args.image_size, device=args.device, out=args.out)
    print(f"{result['model']} on {result['part']} ({result['images']} images): "
          f"top-1 {result['top1']:.2f}%  top-5 {result['top5']:.2f}%")
    worst = sorted(result["per_class"].items(), key=lambda kv: kv[1])[:5]
    print("lowest per-class accuracy: " + ", ".join(f"{k} {v:.1f}%" for k, v in worst))
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from .synth import generate_dataset

    names = generate_dataset(args.out, classes=args.classes, per_class=args.per_class, size=args.size,
                             seed=args.seed, progress=not args.quiet)
    print(f"{args.out}: {len(names)} classes x {args.per_class} images at {args.size} px "
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


def cmd_methods(args: argparse.Namespace) -> int:
    from .distillers import registry

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

    for name, spec in MODELS.items():
        n = count_parameters(build_model(name, args.classes))
        print(f"{name:13s} {spec.family:8s} {n / 1e6:6.2f} M params at {args.classes} classes  {spec.description}")
    return 0


COMMANDS = {"synth": cmd_synth, "train": cmd_run, "distill": cmd_run, "eval": cmd_eval,
            "ablate": cmd_ablate, "demo": cmd_demo, "export": cmd_export, "table": cmd_table,
            "methods": cmd_methods, "models": cmd_models}


def setup_logging(quiet: bool) -> None:
    logger = logging.getLogger("rsdistill")
    console = next((h for h in logger.handlers if getattr(h, "_rsdistill_console", False)), None)
    if console is None:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("%(message)s"))
        console._rsdistill_console = True  # type: ignore[attr-defined]
        logger.addHandler(console)
    # --quiet silences the console only: a run's train.log always gets the full record.
    console.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.quiet)
    try:
        return COMMANDS[args.command](args)
    except RsDistillError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        resume = getattr(args, "out", None) or getattr(args, "resume", None)
        print(f"interrupted{f'; continue with --resume {resume}' if resume else ''}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
