"""Whether runs in one table can be compared: a difference to a ``--baseline`` run made on another
dataset, or on other test images, is not a difference the method made.

A run's dataset is its fingerprint (``dataset.json``: class names, file count and size; the
dataset's folder for runs made before fingerprints were recorded); its split is the list of its
test images (``split.json``). Tables warn, they do not refuse: the user may mean it.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from ..runs.folder import RunDir

log = logging.getLogger("rsdistill")


def dataset_of(run_dir: Path, folder_only: bool = False) -> Any:
    """What identifies the run's dataset (None when the run does not say)."""
    run = RunDir(run_dir)
    fp = None if folder_only else run.read_fingerprint().get()
    if isinstance(fp, dict) and "classes" in fp:
        return ("fingerprint", tuple(fp["classes"]), fp.get("files"), fp.get("bytes"))
    cfg = run.read_config().get({})
    root = (cfg.get("data") or {}).get("root") if isinstance(cfg, dict) else None
    return ("folder", str(Path(root).expanduser().resolve())) if root else None


def test_images_of(run_dir: Path) -> str | None:
    """A digest of the run's test images (None without a split manifest)."""
    split = RunDir(run_dir).read_split().get()
    if not isinstance(split, dict) or "test" not in split:
        return None
    return hashlib.sha256("\n".join(sorted(split["test"])).encode()).hexdigest()


def warn_if_not_comparable(runs: list[Path], baseline: Path, splits: bool = True) -> list[str]:
    """Warn about each run made on another dataset than ``baseline`` or (with ``splits``) tested
    on other images; returns the warnings. Runs or baselines that do not record either are not
    judged."""
    base_data, base_test = dataset_of(baseline), test_images_of(baseline)
    warnings = []
    for run in runs:
        data = dataset_of(run)
        if data is not None and base_data is not None and data[0] != base_data[0]:
            # one run predates fingerprints: compare what both record, the dataset's folder
            data, base = dataset_of(run, folder_only=True), dataset_of(baseline, folder_only=True)
        else:
            base = base_data
        if data is not None and base is not None and data != base:
            warnings.append(f"run '{run}' was made on another dataset than --baseline '{baseline}': its "
                            "Δ compares different data")
            continue
        test = test_images_of(run)
        if splits and test is not None and base_test is not None and test != base_test:
            warnings.append(f"run '{run}' was tested on other images than --baseline '{baseline}' (another "
                            "split): its Δ mixes the split's effect with the method's")
    for w in warnings:
        log.warning("%s", w)
    return warnings


def warn_if_groups_not_comparable(groups: list[list[Path]], baseline_group: list[Path]) -> list[str]:
    """Seed groups (``SETTING/seed<k>``): each run against the baseline's run of the same seed
    folder (same seed, so the same split is expected), else against its first run, dataset only."""
    by_seed = {Path(d).name: Path(d) for d in baseline_group}
    warnings = []
    for group in groups:
        for run in map(Path, group):
            ref = by_seed.get(run.name)
            if ref is None:
                ref = Path(baseline_group[0])
            if run.resolve() != ref.resolve():
                warnings += warn_if_not_comparable([run], ref, splits=run.name in by_seed)
    return warnings
