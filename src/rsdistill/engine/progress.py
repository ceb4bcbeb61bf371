"""What a run shows while it works: the time the whole run still needs, beside the epoch's bar.

The bars themselves are tqdm's, shown only on a terminal (``disable=None``): a console redirected
to a file gets the plain line per epoch that the trainer logs, never ``\\r`` progress lines.
"""

from __future__ import annotations


def format_duration(seconds: float) -> str:
    """``45s``, ``3m20s``, ``2h05m``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def run_eta(seconds_so_far: float, epochs_done: int, epochs_total: int) -> float | None:
    """Seconds the run still needs after ``epochs_done`` epochs that took ``seconds_so_far``
    (their mean times the epochs left); None before the first epoch has been timed."""
    if epochs_done <= 0 or seconds_so_far <= 0:
        return None
    return seconds_so_far / epochs_done * max(0, epochs_total - epochs_done)


def eta_note(seconds_so_far: float, epochs_done: int, epochs_total: int, prefix: str = "run ") -> str:
    """``"run ~3m20s left"`` (empty before the first epoch, and after the last)."""
    eta = run_eta(seconds_so_far, epochs_done, epochs_total)
    if eta is None or epochs_done >= epochs_total:
        return ""
    return f"{prefix}~{format_duration(eta)} left"
