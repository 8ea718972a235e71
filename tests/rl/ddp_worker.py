"""One process of the 2-process gloo check: train-rl (the TRL trainer) for two steps on scripted rollouts.

Run as ``python -m tests.rl.ddp_worker MODEL_DIR TASK_FILE OUT_DIR LOSS_TYPE [SAVE_EVERY [resume]]`` with RANK /
WORLD_SIZE / MASTER_ADDR / MASTER_PORT set (WORLD_SIZE=1 gives the single-process reference on the same global
batch), and HARNESS_TEST_SHARDING=fsdp2 for FSDP2 instead of DDP (tests/sharding_on_cpu.py).
The rollouts are scripted (tests/rl/test_grpo_signal.py) so both runs train on the same sequences; the
main process saves the final weights to OUT_DIR/weights.pt.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main(model_dir: str, task_file: str, out: str, loss_type: str, save_every: str = "10", resume: str = "") -> None:
    import pytest
    import torch

    from harness.rl.trainer import RLTrainer
    from tests.rl.test_grpo_signal import scripted_rollouts
    from tests.rl.test_trainer import config

    with pytest.MonkeyPatch.context() as monkeypatch:
        scripted_rollouts(monkeypatch)
        trainer = RLTrainer(config(model_dir, task_file, out, steps=2, prompts_per_step=2, group_size=2,
                                   micro_batch_size=1, learning_rate=1e-2, loss_type=loss_type, save_every=int(save_every)))
        history = trainer.train(resume=resume == "resume")
    from harness.training.distributed import full_weights

    weights = full_weights(trainer.grpo.accelerator, trainer.grpo.model)  # a collective under FSDP
    if int(os.environ.get("RANK", "0")) == 0:
        torch.save({"weights": {k: v.detach().clone() for k, v in weights.items()},
                    "loss": [step["loss"] for step in history]}, Path(out) / "weights.pt")


if __name__ == "__main__":
    from tests.sharding_on_cpu import install_if_asked

    install_if_asked()
    main(*sys.argv[1:])
