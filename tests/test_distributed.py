"""Distributed runs (issue 9, part 4): ``torchrun --nproc_per_node=N -m rsdistill distill ...`` on
the CPU with the gloo backend, 2 processes, tiny data.

What must hold: every process draws the same epoch order and takes a disjoint share of it; process
0 alone writes the run directory; the figures a distributed run reports are those of one process
evaluating its final checkpoint; a killed run resumes with ``--resume`` like a single-process one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from rsdistill.data.sampling import Shard, epoch_order, eval_indices, shard_length, shard_of_order
from rsdistill.engine.checkpoint import read_checkpoint
from rsdistill.engine.distributed import SINGLE, Distributed, check_batch_size, from_env, reduce_sums
from rsdistill.engine.runlog import read_jsonl
from rsdistill.errors import ConfigError
from rsdistill.experiments.evaluate import evaluate

from .conftest import TINY

ENTRY = Path(__file__).with_name("torchrun_entry.py")


# ---------------------------------------------------------------------- the epoch's shares
@pytest.mark.parametrize("n", [1, 40, 41])
def test_one_process_sees_the_order_a_shuffling_loader_drew_before_sharding(n):
    loader = DataLoader(range(n), batch_size=7, shuffle=True, generator=torch.Generator().manual_seed(123))
    assert torch.cat(list(loader)).tolist() == epoch_order(n, 123).tolist()


@pytest.mark.parametrize(("n", "world"), [(40, 2), (41, 2), (41, 3), (5, 4)])
def test_the_processes_shares_are_disjoint_equal_and_cover_the_epoch_but_for_the_remainder(n, world):
    order = epoch_order(n, 7)
    shares = [shard_of_order(order, Shard(r, world)) for r in range(world)]
    seen = [i for s in shares for i in s.tolist()]
    assert len(seen) == len(set(seen)) == n - n % world  # disjoint, nothing shown twice
    assert all(len(s) == shard_length(n, Shard(r, world)) == n // world for r, s in enumerate(shares))
    assert set(seen) <= set(range(n))


def test_an_evaluation_split_is_shared_out_image_by_image():
    parts = [eval_indices(11, Shard(r, 3)).tolist() for r in range(3)]
    assert sorted(i for p in parts for i in p) == list(range(11))


def test_torchruns_variables_say_which_process_this_is():
    assert from_env({}) == SINGLE
    assert from_env({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == Distributed(1, 4, 1)
    assert not from_env({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}).enabled
    with pytest.raises(ConfigError, match="RANK=5 is not a process of WORLD_SIZE=2"):
        from_env({"RANK": "5", "WORLD_SIZE": "2"})
    with pytest.raises(ConfigError, match="LOCAL_RANK='x'"):
        from_env({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "x"})


def test_the_batch_is_shared_out_evenly():
    check_batch_size(Distributed(0, 4), 64)
    with pytest.raises(ConfigError, match="train.batch_size: 30 is the batch of all 4 processes"):
        check_batch_size(Distributed(0, 4), 30)
    assert reduce_sums(SINGLE, {"kd": (torch.tensor(3.0), 2)}) == {"kd": (3.0, 2.0)}


# ---------------------------------------------------------------------- two processes, end to end
def torchrun(*args, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node=2 --standalone ARGS`` (as ``python -m torch.distributed.run``)."""
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", *map(str, args)],
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, capture_output=True, text=True, timeout=timeout)


def test_a_killed_two_process_run_resumes_and_reports_what_one_process_evaluates(scenes, teacher_run, tmp_path):
    run, record = tmp_path / "run", tmp_path / "record"
    record.mkdir()
    # KD from the cached teacher (filled by both processes), global batch 16 = 8 per process.
    args = ["distill", "--data", scenes, "--teacher", teacher_run, "--student", "resnet20", "--method", "kd",
            "--out", run, "--set", *TINY, "train.epochs=2", "data.view_bank=4", "data.rs_aug=true", "--deterministic"]

    # 1. Process 0 is killed (SIGKILL) just after epoch 1's checkpoint; torchrun stops process 1.
    killed = torchrun(ENTRY, *args, env={"RSDISTILL_TEST_RECORD": str(record), "RSDISTILL_TEST_KILL_AFTER": "1"})
    assert killed.returncode != 0, killed.stdout + killed.stderr
    assert read_checkpoint(run / "checkpoints" / "last.pt")["train_state"]["progress"]["epoch"] == 1
    assert not (run / "metrics.json").exists()

    # The ranks saw disjoint halves of epoch 1 (40 training images, 8 per batch in each process).
    first = {}
    for rank in (0, 1):
        first[rank] = json.loads((record / f"rank{rank}.jsonl").read_text().splitlines()[0])
        assert (first[rank]["rank"], first[rank]["world"], first[rank]["batch_size"]) == (rank, 2, 8)
    assert first[0]["epoch_seed"] == first[1]["epoch_seed"]
    halves = set(first[0]["indices"]), set(first[1]["indices"])
    assert len(halves[0]) == len(halves[1]) == 20 and not halves[0] & halves[1]
    assert halves[0] | halves[1] == set(range(40))

    # 2. The real entry point resumes it with torchrun.
    resumed = torchrun("-m", "rsdistill", "distill", "--resume", run)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    lines = read_jsonl(run / "metrics.jsonl")
    assert [ln["epoch"] for ln in lines] == [1, 2]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["epochs"] == 2 and metrics["processes"] == 2
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["epochs"] == 2  # printed once, by process 0
    log = (run / "train.log").read_text()
    assert log.count("epoch 2/2") == 1  # process 0 alone logs (epoch 1's line died with the killed process)
    # the killed start and the resume, each saying how the work was shared out
    assert log.count("distributed: 2 processes (gloo backend); each trains on 20 of the 40 training images") == 2

    # 3. One process evaluating the final checkpoint gets the run's figures, class by class.
    single = evaluate(run, None, device="cpu", out=tmp_path / "eval")
    assert (single["top1"], single["top5"]) == (metrics["top1"], metrics["top5"]) == (lines[-1]["test/top1"],
                                                                                      lines[-1]["test/top5"])
    assert (tmp_path / "eval" / "confusion_matrix.csv").read_text() == (run / "confusion_matrix.csv").read_text()
