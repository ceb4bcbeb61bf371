"""A suite cell's run under torchrun (``rsdistill suite --nproc-per-cell N``): every process of the
cell builds its resolved config and runs (or resumes) its run directory, data-parallel as
``torchrun -m rsdistill distill`` would; the cell process that started torchrun keeps the record.

    python -m torch.distributed.run --standalone --nproc_per_node N -m rsdistill.experiments.suite.torchrun CONFIG.json RUN_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ...config import build_config
from ...errors import RsDistillError
from ..collect import run_or_resume


def main(argv: list[str]) -> int:
    config_file, run_dir = argv
    try:
        cfg = build_config(json.loads(Path(config_file).read_text()), source=config_file)
        run_or_resume(cfg, Path(run_dir))
    except RsDistillError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
