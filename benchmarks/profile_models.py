"""What compression buys: ResNet18 (student) beside ResNet34 (teacher) at 64 px and 224 px, with
`rsdistill profile`'s measurements (parameters, FLOPs, float ONNX size, median latency at batch 1
and 64 under PyTorch and onnxruntime, on the CPU and on CUDA where present).

    python benchmarks/profile_models.py             # writes benchmarks/results/profile.json and .md
    python benchmarks/profile_models.py --quick     # batch 1 and 8, 3 repeats: a minute or so

The models have random weights and 1000 classes (the ImageNet heads the published FLOPs refer to;
at an RS dataset's 21-45 classes the counts differ by under 0.1 %). Latencies depend on the
machine and on what else runs on it: the ratios are the figures to read.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import sys
from pathlib import Path

import torch

from rsdistill.deploy.profile import comparison_table, profile_models
from rsdistill.io import atomic_write_json, atomic_write_text

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 1 and 8, 3 repeats, 1 warm-up")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--student", default="resnet18")
    parser.add_argument("--teacher", default="resnet34")
    parser.add_argument("--out", type=Path, default=RESULTS / "profile")
    parser.add_argument("--note", default="", help="a line for the Markdown file (e.g. what else ran)")
    args = parser.parse_args()
    batches, repeats, warmup = ((1, 8), 3, 1) if args.quick else ((1, 64), args.repeats, args.warmup)

    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
               "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
               "date": datetime.date.today().isoformat()}
    results = {"machine": machine, "student": args.student, "teacher": args.teacher, "sizes": {}}
    md = [f"# {args.student} (student) beside {args.teacher} (teacher)", "",
          f"`{shlex.join(['python', 'benchmarks/profile_models.py', *sys.argv[1:]])}` on {machine['processor']}, "
          f"{machine['cpu_count']} CPUs, {machine['torch_threads']} threads"
          f"{', ' + machine['cuda'] if machine['cuda'] else ', no CUDA'}, {machine['date']}. Random weights, "
          f"1000 classes. Latency: median ms per batch of {repeats} runs after {warmup} warm-up runs.",
          *([args.note] if args.note else []), ""]
    for size in args.sizes:
        print(f"{size} px ...", flush=True)
        record = profile_models(args.student, args.teacher, size, 1000, batches, repeats, warmup)
        results["sizes"][str(size)] = record
        table = comparison_table(record, f"{size} px").to_markdown()
        print(table)
        md.append(table)
    atomic_write_json(args.out.with_suffix(".json"), results)
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(md))
    print(f"written: {args.out.with_suffix('.json')}, {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
