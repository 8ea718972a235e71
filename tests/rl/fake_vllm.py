"""A stand-in for VLLMBackend where no vLLM engine can run: an hf backend loaded from the folder the trainer
saved (in the dtype the engine was asked for), so what it generates comes from the saved files alone."""

from __future__ import annotations

import os


class FakeEngine:
    """Built from a saved folder; records the folder's files, the weights it loaded and whether it was closed."""

    def __init__(self, folder: str, engine_args: dict) -> None:
        from harness.models.hf import HFBackend

        self.folder, self.engine_args, self.closed = folder, engine_args, False
        self.files = sorted(os.listdir(folder))
        self.inner = HFBackend(folder, {"device": "cpu", "dtype": engine_args["dtype"]})
        self.weights = {name: p.detach().clone() for name, p in self.inner.model.named_parameters()}

    def generate(self, requests, params):
        return self.inner.generate(requests, params)

    def close(self) -> None:
        self.closed = True
