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


class FakeServerClient:
    """TRL's ``VLLMClient`` as its server-mode ``VLLMGeneration`` and our ``TRLServerBackend`` call it, over an hf
    backend playing the server. Like a server launched on some other checkpoint, its weights start as noise:
    what it generates comes from the tensors ``update_named_params`` streamed to it alone. Every client made
    is in ``FakeServerClient.made``; ``model_folder`` is the architecture it loads."""

    made: list = []
    model_folder = ""

    def __init__(self, base_url=None, group_port=51216, connection_timeout=0.0) -> None:
        import torch

        from harness.models.hf import HFBackend

        self.base_url, self.group_port = base_url, group_port
        self.inner = HFBackend(self.model_folder, {"device": "cpu", "dtype": "float32"})
        generator = torch.Generator().manual_seed(1234)
        with torch.no_grad():
            for parameter in self.inner.model.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
        self.syncs, self.prompts_per_call, self.prefix_cache_resets, self.communicator_device = [], [], 0, None
        FakeServerClient.made.append(self)

    def init_communicator(self, device) -> None:
        self.communicator_device = str(device)

    def update_named_params(self, metadata, named_params) -> None:
        """Each tensor as announced (name, dtype, shape), loaded into the server's model by name."""
        import torch

        own = dict(self.inner.model.named_parameters())
        received = {}
        for (name, dtype, shape), (sent, tensor) in zip(metadata, named_params, strict=True):
            assert sent == name and list(tensor.shape) == shape and str(tensor.dtype).removeprefix("torch.") == dtype, name
            received[name] = tensor.detach().clone()
        with torch.no_grad():
            for name, tensor in received.items():
                own[name].copy_(tensor)
        self.syncs.append(received)

    def reset_prefix_cache(self) -> None:
        self.prefix_cache_resets += 1

    def generate(self, prompts, n=1, temperature=1.0, top_p=1.0, max_tokens=16, logprobs=0, generation_kwargs=None, **_):
        from harness.models.types import GenerationRequest, SamplingParams

        assert n == 1
        stop = list((generation_kwargs or {}).get("stop") or [])
        params = SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=max_tokens, stop=stop)
        self.prompts_per_call.append(len(prompts))
        generated = self.inner.generate([GenerationRequest(list(p)) for p in prompts], params)
        return {"prompt_ids": prompts, "completion_ids": [list(g.token_ids) for g in generated], "logprobs": None}


def serve_with_fakes(model_folder: str):
    """Point TRL's server mode at ``FakeServerClient`` (vLLM itself is not installed here); undo with the
    returned function. Returns (undo, the list of clients made)."""
    import trl.generation.vllm_generation as trl_generation

    import harness.em.rollout_backend as rollout_backend

    real = (trl_generation.VLLMClient, trl_generation.is_vllm_available, rollout_backend.vllm_installed)
    FakeServerClient.model_folder, FakeServerClient.made = model_folder, []
    trl_generation.VLLMClient, trl_generation.is_vllm_available = FakeServerClient, lambda: True
    rollout_backend.vllm_installed = lambda: True

    def undo() -> None:
        trl_generation.VLLMClient, trl_generation.is_vllm_available, rollout_backend.vllm_installed = real

    return undo, FakeServerClient.made
