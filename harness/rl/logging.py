"""Metric logging: ``metrics.jsonl`` always, plus TensorBoard and/or Weights & Biases when asked for."""

from __future__ import annotations

import json
from pathlib import Path


class MetricLogger:
    def __init__(self, out: Path, report_to: list[str], enabled: bool = True) -> None:
        self.enabled = enabled
        self.writers = []
        unknown = set(report_to) - {"jsonl", "tensorboard", "wandb"}
        if unknown:
            raise ValueError(f"unknown report_to {sorted(unknown)}; use jsonl, tensorboard, wandb")
        if not enabled:
            return
        Path(out).mkdir(parents=True, exist_ok=True)
        self.jsonl = open(Path(out) / "metrics.jsonl", "a", encoding="utf-8")
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
