"""One process of the 2-process gloo check: train-rl (the TRL trainer) for two steps on scripted rollouts.

Run as ``python -m tests.rl.ddp_worker MODEL_DIR TASK_FILE OUT_DIR LOSS_TYPE`` with RANK / WORLD_SIZE /
MASTER_ADDR / MASTER_PORT set (WORLD_SIZE=1 gives the single-process reference on the same global batch).
The rollouts are scripted (tests/rl/test_grpo_signal.py) so both runs train on the same sequences; the
main process saves the final weights to OUT_DIR/weights.pt.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main(model_dir: str, task_file: str, out: str, loss_type: str) -> None:
    import pytest
    import torch

    from harness.rl.trainer import RLTrainer
    from tests.rl.test_grpo_signal import scripted_rollouts
    from tests.rl.test_trainer import config

    with pytest.MonkeyPatch.context() as monkeypatch:
        scripted_rollouts(monkeypatch)
        trainer = RLTrainer(config(model_dir, task_file, out, steps=2, prompts_per_step=2, group_size=2,
                                   micro_batch_size=1, learning_rate=1e-2, loss_type=loss_type, save_every=10))
        history = trainer.train()
    if int(os.environ.get("RANK", "0")) == 0:
        torch.save({"weights": {k: v.detach().clone() for k, v in trainer.model.state_dict().items()},
                    "loss": [step["loss"] for step in history]}, Path(out) / "weights.pt")


if __name__ == "__main__":
    main(*sys.argv[1:])
