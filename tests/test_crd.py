"""CRD (docs/methods/crd.md): the NCE loss against its formula, the sampling of negatives, the
memory banks (updated at exactly the batch's indices, Z set once), and the banks' path through a
run: every training index reaches the method, and a resumed run restores the banks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from rsdistill.distillers.crd import CRD, nce_loss, sample_contrast_indices
from rsdistill.errors import ConfigError

from .conftest import TINY, build_distiller, fixed_batch, interrupt_after_logging_epoch, run_cli

C = 5


def make(labels: torch.Tensor | None = None, **over) -> CRD:
    """CRD over a training split of ``labels`` (default: 16 labels cycling over the classes)."""
    return build_distiller("crd", classes=C, train_labels=torch.arange(16) % C if labels is None else labels, **over)


def batch(index: list[int], labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """A fixed batch of the training images at ``index``, with their labels."""
    idx = torch.tensor(index)
    return dict(fixed_batch(len(index), classes=C), label=labels[idx], index=idx)


def test_nce_loss_is_the_official_contrast_loss_on_hand_computed_values():
    p = torch.tensor([[0.5, 0.1, 0.2], [0.05, 0.3, 0.0]])
    n_data = 4  # K = 2 negatives: K * P_n = 0.5
    eps = 1e-7
    rows = [
        math.log(0.5 / (0.5 + 0.5 + eps)) + math.log(0.5 / (0.1 + 0.5 + eps)) + math.log(0.5 / (0.2 + 0.5 + eps)),
        math.log(0.05 / (0.05 + 0.5 + eps)) + math.log(0.5 / (0.3 + 0.5 + eps)) + math.log(0.5 / (0.0 + 0.5 + eps)),
    ]
    assert nce_loss(p, n_data).item() == pytest.approx(-sum(rows) / 2, rel=1e-6)


def test_contrast_indices_put_the_anchor_first_then_distinct_negatives_of_other_classes():
    labels = torch.arange(20) % 4  # 5 per class: 15 samples of other classes
    index = torch.tensor([0, 5, 10, 19])
    torch.manual_seed(0)
    idx = sample_contrast_indices(index, labels, 15, "other_classes")
    assert idx.shape == (4, 16) and torch.equal(idx[:, 0], index)
    for row, i in zip(idx, index):
        negatives = row[1:].tolist()
        # all 15 of them, once each: without replacement, none of the anchor's class
        assert sorted(negatives) == [j for j in range(20) if labels[j] != labels[i]]
    few = sample_contrast_indices(index, labels, 6, "other_classes")
    for row, i in zip(few, index):
        assert len(set(row[1:].tolist())) == 6 and (labels[row[1:]] != labels[i]).all()
    others = sample_contrast_indices(index, labels, 19, "other_samples")
    for row, i in zip(others, index):
        assert sorted(row[1:].tolist()) == [j for j in range(20) if j != i]


def test_the_draw_follows_torch_seed():
    labels = torch.arange(50) % 5
    index = torch.tensor([1, 2, 3])
    torch.manual_seed(7)
    a = sample_contrast_indices(index, labels, 10, "other_classes")
    torch.manual_seed(7)
    b = sample_contrast_indices(index, labels, 10, "other_classes")
    c = sample_contrast_indices(index, labels, 10, "other_classes")
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_the_number_of_negatives_is_capped_by_the_training_set():
    labels = torch.arange(16) % C  # class 0 has 4 samples: 12 samples of other classes for it
    assert make(labels).num_negatives == 12  # nce_k 16384 by default
    assert make(labels, negatives="other_samples").num_negatives == 15
    assert make(labels, nce_k=5).num_negatives == 5
    with pytest.raises(ConfigError, match="negatives"):
        make(torch.zeros(16, dtype=torch.long))


def test_banks_move_toward_the_embeddings_at_exactly_the_batch_indices():
    d = make()
    d.train()
    labels = d.info.train_labels
    b = batch([3, 7, 8, 12], labels)
    before_s, before_t = d.memory.memory_s.clone(), d.memory.memory_t.clone()
    with torch.no_grad():  # the embeddings the method will see (train-mode BN: batch statistics)
        e_s = d.embed_s(d.student(b["image"]).features.pooled)
        e_t = d.embed_t(d.teacher(b["image"]).features.pooled)
    d.forward_train(b)
    idx = b["index"]
    untouched = torch.ones(16, dtype=torch.bool)
    untouched[idx] = False
    for bank, before, e in ((d.memory.memory_s, before_s, e_s), (d.memory.memory_t, before_t, e_t)):
        assert torch.equal(bank[untouched], before[untouched])
        expected = F.normalize(0.5 * before[idx] + 0.5 * e, dim=1)
        assert torch.allclose(bank[idx], expected, atol=1e-6)


def test_normalisation_constants_are_set_from_the_first_batch_then_fixed():
    d = make()
    d.train()
    b = batch([0, 1, 2, 3, 4, 5], d.info.train_labels)
    bank_s, bank_t = d.memory.memory_s.clone(), d.memory.memory_t.clone()
    assert (d.memory.z < 0).all()  # unset
    torch.manual_seed(3)
    idx = d.contrast_indices(b["index"])
    with torch.no_grad():
        e_s = d.embed_s(d.student(b["image"]).features.pooled)
        e_t = d.embed_t(d.teacher(b["image"]).features.pooled)
    n = d.info.num_train
    z_s = n * torch.exp(torch.einsum("bd,bkd->bk", e_s, bank_t[idx]) / 0.07).mean()
    z_t = n * torch.exp(torch.einsum("bd,bkd->bk", e_t, bank_s[idx]) / 0.07).mean()
    torch.manual_seed(3)
    d.forward_train(b)
    assert d.memory.z[0].item() == pytest.approx(z_s.item(), rel=1e-4)
    assert d.memory.z[1].item() == pytest.approx(z_t.item(), rel=1e-4)
    z = d.memory.z.clone()
    d.forward_train(batch([6, 7, 8], d.info.train_labels))
    assert torch.equal(d.memory.z, z)


def test_losses_are_weighted_and_named_per_direction():
    d = make(crd_weight=0.5)
    d.train()
    b = batch([0, 1, 2, 3], d.info.train_labels)
    torch.manual_seed(0)
    _, a = d.forward_train(b)
    assert set(a) == {"ce", "crd_s", "crd_t"}
    d2 = make(crd_weight=1.0)
    d2.train()
    torch.manual_seed(0)
    _, b2 = d2.forward_train(b)
    assert a["crd_s"].item() == pytest.approx(0.5 * b2["crd_s"].item(), rel=1e-5)
    assert a["crd_t"].item() == pytest.approx(0.5 * b2["crd_t"].item(), rel=1e-5)


def test_every_training_index_reaches_the_method_and_a_resumed_run_restores_the_banks(
        capsys, scenes, teacher_run, tmp_path, monkeypatch):
    seen: list[torch.Tensor] = []
    original_forward = CRD.forward_train

    def recording(self, b):
        seen.append(b["index"].clone())
        return original_forward(self, b)

    args = ["distill", "--data", scenes, "--teacher", teacher_run, "--student", "resnet20", "--method",
            "crd", "--set", *TINY, "train.epochs=2"]
    monkeypatch.setattr(CRD, "forward_train", recording)
    code, _, err = run_cli(capsys, *args, "--out", tmp_path / "full", "--deterministic")
    assert code == 0, err
    monkeypatch.undo()
    full = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=True)["extras"]["memory"]
    n = full["memory_s"].shape[0]
    epoch1 = torch.cat(seen[: len(seen) // 2]).tolist()
    assert sorted(epoch1) == list(range(n))  # each training image once per epoch, by its index
    # every row was written (the initial rows are not unit vectors) and Z is set
    assert torch.allclose(full["memory_s"].norm(dim=1), torch.ones(n), atol=1e-5)
    assert torch.allclose(full["memory_t"].norm(dim=1), torch.ones(n), atol=1e-5)
    assert (full["z"] > 0).all()

    interrupt_after_logging_epoch(monkeypatch, 2)
    code, _, err = run_cli(capsys, *args, "--out", tmp_path / "cut", "--deterministic")
    assert code == 130, err
    monkeypatch.undo()
    after1 = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)["extras"]["memory"]
    assert not torch.equal(after1["memory_s"], full["memory_s"])  # epoch 2 still moves the banks
    code, _, err = run_cli(capsys, "distill", "--resume", tmp_path / "cut")
    assert code == 0, err
    cut = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)["extras"]["memory"]
    for key in ("memory_s", "memory_t", "z"):
        assert torch.allclose(cut[key], full[key], atol=1e-6), key
