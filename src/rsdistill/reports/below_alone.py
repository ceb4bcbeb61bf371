"""Flag a distilled student that ended below the same student trained alone.

Distillation costs the student when its teacher is barely better than it (measured in issue 21:
a teacher 2.8 points above the student alone made KD cost 1.8 points and ISDM 1.25), and nothing
in a table of top-1 values says so by itself. Tables that hold the student alone beside distilled
runs add one note per such run, with how far its teacher was above the student alone."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Score:
    """A row of a table: its label, the student's architecture, whether it is the student trained
    alone (no teacher), the comparable setting it belongs to (data, image size, split), its
    top-1 values (one per seed) and its teacher's top-1 on the same test split, where known."""

    label: str
    model: str
    alone: bool
    setting: str
    top1: tuple[float, ...]
    teacher_top1: float | None = None


def below_alone_note(label: str, mine: float, alone: float, teacher: float | None) -> str:
    """One line: the run, how far below the student alone it is, and its teacher's margin."""
    teacher_part = (f"; its teacher ({teacher:.2f}) is {teacher - alone:+.2f} points from the student alone"
                    if teacher is not None else "")
    return (f"⚠ {label}: top-1 {mine:.2f} is {alone - mine:.2f} below the student trained alone "
            f"({alone:.2f}){teacher_part}. A teacher barely better than its student can cost the "
            f"student accuracy (docs/isdm.md, 'A teacher barely better than its student').")


def below_alone_notes(scores: Iterable[Score]) -> list[str]:
    """A note for every distilled row whose mean top-1 is below the mean of the student-alone rows
    of the same architecture and setting (rows with no student alone beside them are not judged)."""
    scores = [s for s in scores if s.top1]
    alone: dict[tuple[str, str], list[float]] = {}
    for s in scores:
        if s.alone:
            alone.setdefault((s.model, s.setting), []).extend(s.top1)
    notes = []
    for s in scores:
        ref = alone.get((s.model, s.setting))
        if s.alone or not ref:
            continue
        mine, base = statistics.mean(s.top1), statistics.mean(ref)
        if mine < base:
            notes.append(below_alone_note(s.label, mine, base, s.teacher_top1))
    return notes
