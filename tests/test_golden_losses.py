"""Every registered method (and every shorthand such as ``kd+ls``) gives pinned loss values on one
fixed batch, with fixed student and teacher weights drawn from a seed (as torchdistill pins a loss
per method). A refactor must leave every value unchanged; a deliberate change of a method's maths
regenerates the fixture with ``RSDISTILL_REGEN_GOLDEN=1 pytest tests/test_golden_losses.py`` and
says why in its commit."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from rsdistill.distillers import registry

from .conftest import build_distiller, calibrate_teacher, fixed_batch

FIXTURE = Path(__file__).parent / "fixtures" / "golden_losses.json"
C = 5
# Cases whose default start hides part of a method's maths: ISDM's scaler starts at zero (q = p_t,
# no margin), so it is also pinned with a scaler away from zero, and with the first
# reconstruction's batch z-score margin.
VARIANTS = {
    "isdm/trained_scaler": ("isdm", {}),
    "is/trained_scaler": ("is", {}),  # IS alone: the trained scaler's shift, no margin
    "isdm/trained_scaler/is_direction=raise": ("isdm", {"is_direction": "raise"}),
    "isdm/trained_scaler/is_level=entropy": ("isdm", {"is_level": "entropy"}),
    "isdm/trained_scaler/is_level=entropy/kappa=1": ("isdm", {"is_level": "entropy", "kappa": 1.0}),
    "isdm/margin_source=gap": ("isdm", {"margin_source": "gap", "is_level": "entropy"}),
    # issue 21's margins and the weak-teacher trust
    "isdm/trained_scaler/margin_on=teacher_right": ("isdm", {"margin_on": "teacher_right"}),
    "isdm/trained_scaler/margin_sign=positive": ("isdm", {"margin_sign": "positive"}),
    # (raise only: this scaler lowers every sample, and the hinge would be zero)
    "isdm/trained_scaler/margin_acts=gap/is_direction=raise": ("isdm", {"margin_acts": "gap", "is_direction": "raise"}),
    # a meter that has seen the teacher 5 points ahead: the alignment at about half its weight
    "isdm/trained_scaler/trust=advantage": ("isdm", {"trust": "advantage"}),
}
NAMES = sorted(registry.names()) + sorted(registry.ALIASES) + sorted(VARIANTS)


def losses_of(name: str) -> dict[str, float]:
    method, overrides = VARIANTS.get(name, (name, {}))
    d = build_distiller(method, classes=C, train_labels=torch.arange(16) % C, seed=3, **overrides)
    if "trained_scaler" in name:
        g = torch.Generator().manual_seed(5)
        with torch.no_grad():
            for p in d.scaler.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    if "trust" in name:
        d.trust.acc.copy_(torch.tensor([0.60, 0.55]))
    calibrate_teacher(d, 16)
    d.train()
    batch = fixed_batch(16, classes=C, seed=7, random_labels=True, strong="two_views" in d.needs)
    torch.manual_seed(11)  # methods that sample (negatives, views) draw the same
    with torch.no_grad():
        _, losses = d.forward_train(batch)
    return {k: float(v) for k, v in sorted(losses.items())}


def _golden() -> dict[str, dict[str, float]]:
    if os.environ.get("RSDISTILL_REGEN_GOLDEN"):
        values = {name: losses_of(name) for name in NAMES}
        FIXTURE.write_text(json.dumps(values, indent=1, sort_keys=True) + "\n")
    return json.loads(FIXTURE.read_text())


GOLDEN = _golden()


def test_every_method_and_shorthand_has_a_golden_value():
    assert sorted(GOLDEN) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_loss_values_match_the_golden_fixture(name):
    got = losses_of(name)
    want = GOLDEN[name]
    assert list(got) == list(want), f"{name}: loss names changed"
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-5, abs=1e-5), f"{name}: loss '{k}'"
