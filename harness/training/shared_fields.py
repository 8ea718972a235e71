"""The config fields more than one trainer has, declared once: name, help, bounds and default. Those
with one default for all are fields of the base dataclasses ``TrainerFields`` (every trainer) and
``RolloutTrainerFields`` (RL and EM); a trainer's config inherits them. Those whose default differs (an
output folder, a learning rate) are declared by a function the trainer passes its default, and the help
and bounds stay the ones declared here. The command-line options for these fields
(harness/training/options.py) take their help from ``HELP``.

The rollout limits shared with ``harness eval`` come from harness/defaults.py."""

from __future__ import annotations

from dataclasses import dataclass

from harness.defaults import MAX_TOOL_CALLS, TRAIN_SANDBOX_TIMEOUT_S
from harness.training.config import TrainerConfig, option
from harness.training.metrics import REPORTERS
from harness.training.policy import PRECISIONS
from harness.training.schedule import SCHEDULES

DEVICES = ("auto", "cpu", "cuda")
SANDBOXES = ("local", "docker")

HELP = {
    "model": "policy to start from: a Hugging Face model folder",
    "output_dir": "run folder: checkpoints, metrics.jsonl, provenance.json and the final model",
    "seed": "seed for data order, rollouts and initialisation",
    "learning_rate": "AdamW learning rate",
    "save_every": "optimiser steps between checkpoints",
    "report_to": "loggers: jsonl (metrics.jsonl, written whatever this says), tensorboard, wandb",
    "device": "where to train: auto (cuda when there is one), cpu or cuda",
    "dtype": "compute precision: auto (bfloat16 autocast on GPU, float32 on CPU), float32 or bfloat16",
    "gradient_checkpointing": "recompute each layer in the backward pass instead of keeping its activations",
    "micro_batch_tokens": "most padded tokens (rows x longest row) per forward/backward pass; 0: rows only",
    "task": "training task: a built-in task, a JSONL/parquet query pool or a hub id (test splits refused)",
    "task_args": "generator arguments (procedural tasks), local_file, or a pool's question_field / answer_field / split",
    "data_dir": "folder with the tasks' local JSONL files",
    "allow_test_split": ("train on a test split anyway, by name or by questions shared with a benchmark "
                         "(recorded in OUT/training_task.json)"),
    "max_tokens": "response token budget per rollout (model and tool tokens)",
    "max_tool_calls": "executed code cells per rollout",
    "temperature": "rollout sampling temperature",
    "top_p": "rollout nucleus sampling",
    "lr_schedule": "constant or cosine (after the warm-up)",
    "sandbox": "where rollout code runs: local or docker",
    "sandbox_timeout": "seconds per code cell",
}


@dataclass
class TrainerFields(TrainerConfig):
    """Every trainer's: the policy it starts from, the seed, the device and the loggers."""

    model: str = option("", HELP["model"])
    seed: int = option(0, HELP["seed"])
    device: str = option("auto", HELP["device"], choices=DEVICES)
    gradient_checkpointing: bool = option(False, HELP["gradient_checkpointing"])
    report_to: list = option(["jsonl"], HELP["report_to"], choices=REPORTERS)


@dataclass
class RolloutTrainerFields(TrainerFields):
    """The trainers that roll out (train-rl, train-em): the training task, and the rollouts' sampling and sandbox."""

    task: str = option("arith", HELP["task"])
    task_args: dict = option({"split": "train"}, HELP["task_args"])
    data_dir: str | None = option(None, HELP["data_dir"])
    allow_test_split: bool = option(False, HELP["allow_test_split"])
    max_tool_calls: int = option(MAX_TOOL_CALLS, HELP["max_tool_calls"], minimum=0)
    temperature: float = option(1.0, HELP["temperature"], minimum=0)
    sandbox: str = option("local", HELP["sandbox"], choices=SANDBOXES)
    sandbox_timeout: float = option(TRAIN_SANDBOX_TIMEOUT_S, HELP["sandbox_timeout"], above=0)


# Fields whose default differs between trainers: the help and bounds are declared here, the default there.


def output_dir(default: str):
    return option(default, HELP["output_dir"])


def learning_rate(default: float, note: str = ""):
    return option(default, HELP["learning_rate"] + note, above=0)


def save_every(default: int, note: str = ""):
    return option(default, HELP["save_every"] + note, minimum=1)


def dtype(note: str):
    return option("auto", f"{HELP['dtype']}; {note}", choices=PRECISIONS)


def micro_batch_tokens():
    return option(0, HELP["micro_batch_tokens"], minimum=0)


def max_tokens(default: int, note: str = ""):
    return option(default, HELP["max_tokens"] + note, minimum=1)


def top_p(default: float, note: str = ""):
    return option(default, HELP["top_p"] + note, above=0, maximum=1)


def lr_schedule(default: str, note: str = ""):
    return option(default, HELP["lr_schedule"] + note, choices=SCHEDULES)
