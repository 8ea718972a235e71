"""Test-only shim: accelerate's FSDP2 on CPU processes over gloo, so the sharded paths run in CI without a GPU.

accelerate turns FSDP on only for GPU-like distributed types (MULTI_GPU, XPU, ...), never MULTI_CPU, although
torch's FSDP2 (``fully_shard``) itself works on CPU over gloo. ``install()`` wraps the trainers' one factory,
``harness.training.policy.make_accelerator``: it builds the Accelerator as usual (MULTI_CPU under several
processes) and then switches the shared state to FSDP with the plugin ``accelerate launch --config_file
configs/accelerate-fsdp.yaml`` (FSDP2) would have set up on GPUs. ``prepare``, backward, the optimiser step and the
full-state-dict gather then take accelerate's FSDP2 code paths. Measured in ../shared/notes/fsdp2_on_cpu.py
(torch 2.13, accelerate 1.16). The trainers are not changed by this module: it only chooses their launcher.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "HARNESS_TEST_SHARDING"  # "fsdp2" installs the shim in a worker process; unset or "ddp" leaves it alone


FSDP_LAUNCH_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "accelerate-fsdp.yaml"


def fsdp2_plugin():
    """The plugin ``accelerate launch --config_file configs/accelerate-fsdp.yaml`` builds: launch turns each
    ``fsdp_<name>`` of the file into an ``FSDP_<NAME>`` environment variable, which the plugin reads. So
    the tests shard with the documented settings, not a copy of them."""
    import yaml
    from accelerate.utils import FullyShardedDataParallelPlugin

    settings = yaml.safe_load(FSDP_LAUNCH_CONFIG.read_text())["fsdp_config"]
    for key, value in settings.items():
        os.environ["FSDP_" + key.removeprefix("fsdp_").upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    # No layer class named: accelerate wraps the classes the model lists in _no_split_modules (its decoder layer).
    return FullyShardedDataParallelPlugin()


def switch_to_fsdp2(accelerator) -> None:
    """Turn an Accelerator built on several CPU processes (MULTI_CPU over gloo) into an FSDP2 one."""
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType

    if accelerator.num_processes > 1:
        accelerator.state.distributed_type = DistributedType.FSDP
        accelerator.state.fsdp_plugin = fsdp2_plugin()
        PartialState().distributed_type = DistributedType.FSDP


def install() -> None:
    """Every Accelerator a trainer builds from here on is an FSDP2 one: ours (SFT, EM) through
    ``make_accelerator``, TRL's (train-rl) through transformers' Trainer, which also reads its
    ``is_fsdp_enabled`` flag to choose FSDP's code paths (wrapping, saving, resuming)."""
    from transformers import Trainer

    import harness.training.policy as policy

    build = policy.make_accelerator

    def make_fsdp2_accelerator(device: str, dtype: str):
        accelerator = build(device, dtype)
        switch_to_fsdp2(accelerator)
        return accelerator

    create = Trainer.create_accelerator_and_postprocess

    def create_fsdp2_accelerator(trainer) -> None:
        create(trainer)
        switch_to_fsdp2(trainer.accelerator)
        trainer.is_fsdp_enabled = trainer.accelerator.num_processes > 1

    policy.make_accelerator = make_fsdp2_accelerator
    Trainer.create_accelerator_and_postprocess = create_fsdp2_accelerator


def install_if_asked() -> None:
    if os.environ.get(ENV, "ddp") == "fsdp2":
        install()
