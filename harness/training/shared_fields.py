"""The config fields more than one trainer has, declared once: name, help, bounds and default. A trainer's
config dataclass lists them as ``seed: int = shared.seed()``; where trainers need another default (an
output folder, a learning rate) they pass it, and the help and bounds stay the ones declared here. The
command-line options for these fields (harness/training/options.py) take their help from ``HELP``.

The rollout limits shared with ``harness eval`` come from harness/defaults.py."""

from __future__ import annotations

from harness.defaults import MAX_TOOL_CALLS, TRAIN_SANDBOX_TIMEOUT_S
from harness.training.config import option
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
    "report_to": "loggers besides metrics.jsonl (always written): tensorboard, wandb",
    "device": "auto (cuda when there is one), cpu or cuda",
    "dtype": "compute precision: auto (bfloat16 autocast on GPU, float32 on CPU), float32 or bfloat16",
    "gradient_checkpointing": "recompute each layer in the backward pass instead of keeping its activations",
    "micro_batch_tokens": "most padded tokens (rows x longest row) per forward/backward pass; 0: rows only",
    "task": "training task: a built-in task, a JSONL/parquet query pool or a hub id (test splits refused)",
    "task_args": "generator arguments (procedural tasks), local_file, or a pool's question_field / answer_field / split",
    "data_dir": "folder with the tasks' local JSONL files",
    "allow_test_split": "train on a test split anyway (recorded in OUT/training_task.json)",
    "max_tokens": "response token budget per rollout (model and tool tokens)",
    "max_tool_calls": "executed code cells per rollout",
    "temperature": "rollout sampling temperature",
    "top_p": "rollout nucleus sampling",
    "lr_schedule": "constant or cosine (after the warm-up)",
    "sandbox": "where rollout code runs: local or docker",
    "sandbox_timeout": "seconds per code cell",
}


def model():
    return option("", HELP["model"])


def output_dir(default: str):
    return option(default, HELP["output_dir"])


def seed():
    return option(0, HELP["seed"])


def learning_rate(default: float, note: str = ""):
    return option(default, HELP["learning_rate"] + note, above=0)


def save_every(default: int, note: str = ""):
    return option(default, HELP["save_every"] + note, minimum=1)


def report_to():
    return option(["jsonl"], HELP["report_to"], choices=REPORTERS)


def device():
    return option("auto", HELP["device"], choices=DEVICES)


def dtype(note: str):
    return option("auto", f"{HELP['dtype']}; {note}", choices=PRECISIONS)


def gradient_checkpointing():
    return option(False, HELP["gradient_checkpointing"])


def micro_batch_tokens():
    return option(0, HELP["micro_batch_tokens"], minimum=0)


# ---------------------------------------------------------------- the trainers that roll out (RL, EM)


def task():
    return option("arith", HELP["task"])


def task_args():
    return option({"split": "train"}, HELP["task_args"])


def data_dir():
    return option(None, HELP["data_dir"])


def allow_test_split():
    return option(False, HELP["allow_test_split"])


def max_tokens(default: int, note: str = ""):
    return option(default, HELP["max_tokens"] + note, minimum=1)


def max_tool_calls():
    return option(MAX_TOOL_CALLS, HELP["max_tool_calls"], minimum=0)


def temperature(note: str = ""):
    return option(1.0, HELP["temperature"] + note, minimum=0)


def top_p(default: float, note: str = ""):
    return option(default, HELP["top_p"] + note, above=0, maximum=1)


def lr_schedule(default: str, note: str = ""):
    return option(default, HELP["lr_schedule"] + note, choices=SCHEDULES)


def sandbox():
    return option("local", HELP["sandbox"], choices=SANDBOXES)


def sandbox_timeout():
    return option(TRAIN_SANDBOX_TIMEOUT_S, HELP["sandbox_timeout"], above=0)
