"""Every trainer's per-step log: ``OUT/metrics.jsonl`` always, plus TensorBoard and/or Weights & Biases when
``report_to`` asks for them. One line per logged step under TRL's metric names (``step``, ``loss``,
``grad_norm``, ``learning_rate``, ``reward``, ...); a trainer's own quantities carry a prefix
(``em/...``, ``time/...``). Only numbers reach TensorBoard and W&B."""

from __future__ import annotations

import json
from pathlib import Path

METRICS_FILE = "metrics.jsonl"
REPORTERS = ("jsonl", "tensorboard", "wandb")


class MetricLogger:
    def __init__(self, out: Path, report_to: list[str], enabled: bool = True) -> None:
        self.enabled = enabled
        self.writers = []
        unknown = set(report_to) - set(REPORTERS)
        if unknown:
            raise ValueError(f"unknown report_to {sorted(unknown)}; use {', '.join(REPORTERS)}")
        if not enabled:
            return
        Path(out).mkdir(parents=True, exist_ok=True)
        self.jsonl = open(Path(out) / METRICS_FILE, "a", encoding="utf-8")
        if "tensorboard" in report_to:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ValueError("report_to tensorboard needs `pip install tensorboard`") from None
            self.writers.append(("tensorboard", SummaryWriter(str(Path(out) / "tensorboard"))))
        if "wandb" in report_to:
            try:
                import wandb
            except ImportError:
                raise ValueError("report_to wandb needs `pip install wandb`") from None
            self.writers.append(("wandb", wandb.init(project="harness", dir=str(out))))

    def __enter__(self) -> MetricLogger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def log(self, metrics: dict, step: int) -> None:
        if not self.enabled:
            return
        self.jsonl.write(json.dumps(metrics) + "\n")
        self.jsonl.flush()
        for kind, writer in self.writers:
            numeric = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
            if kind == "tensorboard":
                for key, value in numeric.items():
                    writer.add_scalar(key, value, step)
            else:
                writer.log(numeric, step=step)

    def close(self) -> None:
        if self.enabled:
            self.jsonl.close()
            for kind, writer in self.writers:
                writer.close() if kind == "tensorboard" else writer.finish()
            self.enabled = False
