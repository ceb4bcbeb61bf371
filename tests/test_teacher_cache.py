"""The view bank and the teacher-output cache (data.view_bank, teacher.cache).

A bank holds K fixed views per training image; the teacher's logits on all of them are computed
once, and a logit method reads them instead of running the teacher. Cached and live runs on the
same bank must give the same losses; a cache must never be reused for another teacher or data."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from rsdistill.config import DataConfig, build_config
from rsdistill.data.datamodule import DataModule
from rsdistill.data.view_bank import ViewBank
from rsdistill.distillers import registry
from rsdistill.engine.checkpoint import load_model
from rsdistill.engine.teacher_cache import (
    CACHEABLE,
    cache_directory,
    cache_key,
    compute_teacher_logits,
    load_or_build,
    uses_teacher_cache,
)

from .conftest import TINY, build_distiller, calibrate_teacher, run_cli

LOGIT_METHODS = [n for n in registry.names() if registry.get(n).teacher_outputs <= CACHEABLE
                 and "two_views" not in registry.get(n).needs]


# ---------------------------------------------------------------------- the bank
def test_an_rs_bank_of_8_shows_each_image_in_each_d4_orientation_once():
    bank = ViewBank.draw(5, 8, size=8, pad=0, hflip=True, rs_aug=True, seed=0)
    img = torch.arange(3 * 8 * 8, dtype=torch.uint8).view(3, 8, 8)
    views = [bank.view(img, 2, k) for k in range(8)]
    d4 = [torch.rot90(x, r, (-2, -1)) for x in (img.float() / 255, img.float().flip(-1) / 255) for r in range(4)]
    assert all(any(torch.equal(v, d) for d in d4) for v in views)
    assert len({v.numpy().tobytes() for v in views}) == 8


def test_bank_views_are_crops_of_the_reflection_padded_image_drawn_from_the_seed():
    a = ViewBank.draw(4, 3, size=16, pad=2, hflip=False, rs_aug=False, seed=1)
    assert torch.equal(a.offsets, ViewBank.draw(4, 3, 16, 2, False, False, seed=1).offsets)
    assert not torch.equal(a.offsets, ViewBank.draw(4, 3, 16, 2, False, False, seed=2).offsets)
    assert int(a.offsets.min()) >= 0 and int(a.offsets.max()) <= 4
    img = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)
    v = a.view(img, 0, 0)
    top, left = (int(x) for x in a.offsets[0, 0])
    padded = torch.nn.functional.pad(img.float()[None] / 255, (2, 2, 2, 2), mode="reflect")[0]
    assert torch.equal(v, padded[:, top:top + 16, left:left + 16])


def test_each_epoch_draws_one_view_per_image_reproducibly():
    bank = ViewBank.draw(50, 8, 8, 1, True, True, seed=0)
    assert torch.equal(bank.epoch_views(7), bank.epoch_views(7))
    assert not torch.equal(bank.epoch_views(7), bank.epoch_views(8))
    assert set(bank.epoch_views(7).tolist()) <= set(range(8))


# ---------------------------------------------------------------------- the cache
def bank_data(scenes, views: int = 4, seed: int = 0, size: int = 16, **data) -> DataModule:
    cfg = DataConfig(root=str(scenes), image_size=size, view_bank=views, rs_aug=True, **data)
    return DataModule(cfg, seed)


@pytest.mark.parametrize("name", LOGIT_METHODS)
def test_cached_and_live_teacher_give_the_same_losses(scenes, name):
    data = bank_data(scenes)
    d = build_distiller(name, classes=4, train_labels=data.info.train_labels)
    calibrate_teacher(d, 16)
    d.train()
    logits = compute_teacher_logits(d.teacher, data, torch.device("cpu"), batch_size=7)
    batch = next(iter(data.train_loader(16, epoch_seed=3)))
    live = d.forward_train(dict(batch))[1]
    cached = d.forward_train({**batch, "teacher_logits": logits[batch["index"], batch["view"]]})[1]
    assert list(live) == list(cached)
    for k in live:
        assert cached[k].item() == pytest.approx(live[k].item(), rel=1e-5, abs=1e-6), k


def test_the_key_changes_when_any_of_its_parts_changes(scenes, teacher_run):
    teacher, _ = load_model(teacher_run)
    base = cache_key(teacher, bank_data(scenes))
    assert cache_key(teacher, bank_data(scenes)) == base
    other_teacher, _ = load_model(teacher_run)
    with torch.no_grad():
        next(other_teacher.parameters()).add_(1e-3)
    changed = {
        "teacher": cache_key(other_teacher, bank_data(scenes)),
        "views": cache_key(teacher, bank_data(scenes, views=5)),
        "seed (and so the split and the bank)": cache_key(teacher, bank_data(scenes, seed=1)),
        "image size": cache_key(teacher, bank_data(scenes, size=12)),
        "split": cache_key(teacher, bank_data(scenes, train_ratio=0.6)),
        "crop padding": cache_key(teacher, bank_data(scenes, crop_padding=0.25)),
    }
    for what, key in changed.items():
        assert key.digest() != base.digest(), what
    assert replace(base, images="0" * 24).digest() != base.digest()


def test_a_cache_file_is_reused_only_for_the_same_key_and_rebuilt_when_damaged(scenes, teacher_run, tmp_path):
    teacher, _ = load_model(teacher_run)
    cpu = torch.device("cpu")
    first = load_or_build(teacher, bank_data(scenes), cpu, tmp_path)
    (file,) = tmp_path.glob("teacher-logits-*.pt")
    # a file of that name whose content is someone else's is not trusted
    torch.save({"key": {"teacher": "other"}, "logits": first.logits + 1}, file)
    again = load_or_build(teacher, bank_data(scenes), cpu, tmp_path)
    assert torch.allclose(again.logits, first.logits)
    file.write_bytes(b"not a checkpoint")
    assert torch.allclose(load_or_build(teacher, bank_data(scenes), cpu, tmp_path).logits, first.logits)
    hit = load_or_build(teacher, bank_data(scenes), cpu, tmp_path)
    assert torch.equal(hit.logits, first.logits)
    load_or_build(teacher, bank_data(scenes, views=2), cpu, tmp_path)
    assert len(list(tmp_path.glob("teacher-logits-*.pt"))) == 2


def train_losses(run) -> list[dict[str, float]]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k.startswith("train/")} for r in lines]


def test_a_cached_kd_run_matches_a_live_one_on_the_same_bank(capsys, scenes, teacher_run, tmp_path):
    runs = {}
    for cache in ("true", "false"):
        out = tmp_path / f"cache_{cache}"
        code, _, err = run_cli(capsys, "-q", "distill", "--data", scenes, "--teacher", teacher_run,
                               "--student", "resnet20", "--method", "isdm", "--out", out, "--set", *TINY,
                               "train.epochs=2", "data.view_bank=8", "data.rs_aug=true",
                               f"teacher.cache={cache}", "data.cache=disk", f"data.cache_dir={tmp_path / 'c'}")
        assert code == 0, err
        runs[cache] = train_losses(out)
    assert len(list((tmp_path / "c").glob("teacher-logits-*.pt"))) == 1  # only the cached run made one
    for cached, live in zip(runs["true"], runs["false"]):
        assert cached.keys() == live.keys()
        for k in live:
            assert cached[k] == pytest.approx(live[k], rel=1e-5, abs=1e-6), k


def test_a_feature_method_runs_its_teacher_live_on_the_bank(capsys, scenes, teacher_run, tmp_path):
    code, _, err = run_cli(capsys, "-q", "distill", "--data", scenes, "--teacher", teacher_run,
                           "--student", "resnet20", "--method", "fitnet", "--out", tmp_path / "f",
                           "--set", *TINY, "data.view_bank=8", "data.cache=disk",
                           f"data.cache_dir={tmp_path / 'c'}")
    assert code == 0, err
    assert not list((tmp_path / "c").glob("teacher-logits-*.pt"))


def test_the_cache_serves_kd_dkd_and_isdm_and_mlld_with_its_live_strong_view_runs_live():
    assert sorted(LOGIT_METHODS) == ["dkd", "isdm", "kd"]
    assert registry.get("mlld").teacher_outputs <= CACHEABLE and "two_views" in registry.get("mlld").needs


@pytest.mark.parametrize("method, layer, cached", [
    ("kd", {}, True),
    ("isdm", {}, True),
    ("kd", {"data": {"view_bank": 0}}, False),  # no bank: nothing to look up
    ("kd", {"teacher": {"cache": False}}, False),  # switched off
    ("fitnet", {}, False),  # needs the teacher's features
    ("mlld", {}, False),  # its strong view is drawn live
])
def test_a_run_uses_the_cache_only_for_logits_on_the_banks_views(method, layer, cached):
    cfg = build_config({"method": {"name": method}, "data": {"view_bank": 8}}, layer)
    assert uses_teacher_cache(cfg, registry.get(method)) is cached


def test_cache_files_are_kept_only_with_the_disk_cache(tmp_path):
    assert cache_directory(DataConfig(cache="disk", cache_dir=str(tmp_path))) == tmp_path
    assert cache_directory(DataConfig(cache="memory")) is None


def test_a_student_alone_trains_on_the_bank_too(capsys, scenes, tmp_path):
    code, _, err = run_cli(capsys, "-q", "train", "--data", scenes, "--model", "resnet20",
                           "--out", tmp_path / "ce", "--set", *TINY, "data.view_bank=8")
    assert code == 0, err


def test_runs_started_side_by_side_fill_the_cache_once(scenes, teacher_run, tmp_path, monkeypatch):
    import threading
    import time

    from rsdistill.engine import teacher_cache

    teacher, _ = load_model(teacher_run)
    calls = []
    real = teacher_cache.compute_teacher_logits

    def slow_compute(*args, **kwargs):
        calls.append(1)
        time.sleep(0.3)  # long enough for the other run to arrive while this one fills the cache
        return real(*args, **kwargs)

    monkeypatch.setattr(teacher_cache, "compute_teacher_logits", slow_compute)
    results = []
    runs = [threading.Thread(target=lambda: results.append(
        load_or_build(teacher, bank_data(scenes), torch.device("cpu"), tmp_path))) for _ in range(2)]
    for t in runs:
        t.start()
    for t in runs:
        t.join()
    assert len(calls) == 1
    assert torch.equal(results[0].logits, results[1].logits)
