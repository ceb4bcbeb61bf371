"""``rsdistill`` as torchrun runs it, instrumented for tests/test_distributed.py (run as a script:
``torchrun ... tests/torchrun_entry.py distill ...``):

- ``RSDISTILL_TEST_RECORD=DIR``: each process writes the training indices of every epoch's loader
  to ``DIR/rank<r>.jsonl`` (what the process will train on);
- ``RSDISTILL_TEST_KILL_AFTER=N``: process 0 kills itself (SIGKILL: no clean-up at all) right after
  writing epoch N's ``last.pt``, as a machine failure would.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from rsdistill.cli import main
from rsdistill.data.datamodule import DataModule
from rsdistill.data.sampling import SINGLE
from rsdistill.engine import trainer

record_dir = os.environ.get("RSDISTILL_TEST_RECORD")
kill_after = int(os.environ.get("RSDISTILL_TEST_KILL_AFTER", "0"))

if record_dir:
    original_loader = DataModule.train_loader

    def recording_loader(self, batch_size, epoch_seed, shard=SINGLE, **kwargs):
        loader = original_loader(self, batch_size, epoch_seed, shard, **kwargs)
        indices = loader.sampler.indices if hasattr(loader, "sampler") else loader.indices
        line = {"rank": shard.rank, "world": shard.world, "epoch_seed": epoch_seed, "batch_size": batch_size,
                "indices": indices.tolist()}
        with (Path(record_dir) / f"rank{shard.rank}.jsonl").open("a") as f:
            f.write(json.dumps(line) + "\n")
        return loader

    DataModule.train_loader = recording_loader

if kill_after:
    original_save = trainer.save_checkpoint

    def save_then_die(path, payload):
        original_save(path, payload)
        if path.name == "last.pt" and payload["train_state"]["progress"]["epoch"] == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    trainer.save_checkpoint = save_then_die

sys.exit(main(sys.argv[1:]))
