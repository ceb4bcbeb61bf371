"""Claiming a run folder: moved to :mod:`rsdistill.runs.claim` (below every package that reads
runs); these names stay importable from here for code written against the older place."""

from ..runs.claim import (  # noqa: F401
    LOCK_NAME,
    ClaimedRunDirectory,
    RunDirectoryInUse,
    RunLock,
    check_output_folder,
    check_outside_data,
    check_run_folder,
    clear_unstarted_run,
    record_skipped,
)
