"""The Hugging Face transformers backend: load a local folder (or a cached hub name) and generate.

Two decode engines share one stopping and sampling logic:

* ``slots`` (the default): continuous batching over a preallocated slot cache, the decode step captured
  as a CUDA graph on CUDA and run eagerly on the CPU (``hf_slot_decode.py``); it needs full attention
  with sdpa or eager kernels;
* ``simple`` (the fallback for other models, and the reference the tests hold ``slots`` to): left-padded
  batches over transformers' dynamic cache, finished rows dropped as they finish (``hf_simple_decode.py``).

model_args (strings from the command line are converted): ``device`` (``cuda``, ``cpu``, ``cuda:1``;
default cuda when available), ``dtype`` (``bfloat16``, ``float16``, ``float32``, ``auto``; default
bfloat16 on GPU, float32 on CPU), ``batch_size`` (default 64 on GPU, 8 on CPU), ``attn_implementation``
(default ``sdpa``), ``engine`` (``auto``, ``simple``, ``slots``), ``cuda_graphs`` (default true),
``compile`` (torch.compile the captured step; default false), ``fp16_gemm`` (on the CPU in float32, run
linear layers whose weights are exact float16 values with fbgemm's float16-weight kernel,
``fp16_weight_linear.py``; default true), ``tokenizer`` (a separate tokenizer path), ``trust_remote_code``
(default false), ``revision``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.models.loading import local_model_name
from harness.models.stopping import FinishRules, eos_token_ids_of
from harness.models.types import BackendError, Generation, GenerationRequest, ModelBackend, SamplingParams

_DTYPES = {"bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16", "fp16": "float16",
           "half": "float16", "float32": "float32", "fp32": "float32", "float": "float32"}
_ARG_TYPES = {"device": str, "dtype": str, "batch_size": int, "attn_implementation": str, "engine": str,
              "cuda_graphs": bool, "compile": bool, "fp16_gemm": bool, "tokenizer": str, "trust_remote_code": bool,
              "revision": str}


def coerce_model_args(model_args: dict[str, Any] | None, accepted: dict[str, type], backend: str) -> dict[str, Any]:
    """Check names against ``accepted`` and convert command-line strings ("8", "true") to the right type."""
    result: dict[str, Any] = {}
    for key, value in (model_args or {}).items():
        if key not in accepted:
            raise BackendError(f"unknown model_args key {key!r} for the {backend} backend; accepted: {', '.join(sorted(accepted))}")
        kind = accepted[key]
        if kind is bool and isinstance(value, str):
            if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise BackendError(f"model_args {key}={value!r} is not a boolean")
            value = value.lower() in ("1", "true", "yes")
        try:
            result[key] = kind(value)
        except (TypeError, ValueError):
            raise BackendError(f"model_args {key}={value!r} is not a valid {kind.__name__}") from None
    return result


class HFBackend(ModelBackend):
    """A causal LM run with transformers in this process."""

    def __init__(self, model_path: str, model_args: dict[str, Any] | None = None, name: str | None = None):
        args = coerce_model_args(model_args, _ARG_TYPES, "hf")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = torch.device(args.get("device") or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise BackendError("model_args device=cuda but no CUDA device is available (use device=cpu)")
        dtype = _resolve_dtype(args.get("dtype"), self.device)
        load_args = {"trust_remote_code": args.get("trust_remote_code", False), "revision": args.get("revision")}
        path = _existing_path_or_name(model_path)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(args.get("tokenizer") or path, **load_args)
            model = AutoModelForCausalLM.from_pretrained(
                path, dtype=dtype, attn_implementation=args.get("attn_implementation", "sdpa"), **load_args
            )
        except (OSError, ValueError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise BackendError(f"could not load hf model {model_path!r}: {first_line}") from None
        self.model = model.to(self.device).eval()
        if self.device.type == "cpu" and model.dtype == torch.float32 and args.get("fp16_gemm", True):
            from harness.models.fp16_weight_linear import use_fp16_weight_linears

            use_fp16_weight_linears(self.model)
        self.name = name or local_model_name(model_path)
        self.eos_token_ids = eos_token_ids_of(model.config, getattr(model, "generation_config", None), self.tokenizer)
        self.context_length = context_length_of(model.config)
        on_gpu = self.device.type == "cuda"
        self.batch_size = args.get("batch_size", 64 if on_gpu else 8)
        self.engine = _choose_engine(args.get("engine", "auto"), model.config, model.config._attn_implementation)
        self._slot_decoder = None
        self._use_cuda_graphs = on_gpu and args.get("cuda_graphs", True)
        self._compile = args.get("compile", False)

    @classmethod
    def from_loaded(cls, model: Any, tokenizer: Any, name: str, engine: str = "simple", batch_size: int = 8) -> "HFBackend":
        """Wrap a model already in memory (benchmarks, RL trainers holding the policy)."""
        self = cls.__new__(cls)
        self.model, self.tokenizer, self.name, self.device = model.eval(), tokenizer, name, model.device
        self.eos_token_ids = eos_token_ids_of(model.config, getattr(model, "generation_config", None), tokenizer)
        self.context_length = context_length_of(model.config)
        self.batch_size = batch_size
        self.engine = _choose_engine(engine, model.config, model.config._attn_implementation)
        self._slot_decoder = None
        self._use_cuda_graphs = model.device.type == "cuda"
        self._compile = False
        return self

    @property
    def pad_token_id(self) -> int:
        for candidate in (getattr(self.tokenizer, "pad_token_id", None), *sorted(self.eos_token_ids), 0):
            if candidate is not None:
                return int(candidate)
        return 0

    def generate(self, requests: list[GenerationRequest], params: SamplingParams) -> list[Generation]:
        if not requests:
            return []
        if any(not r.prompt_ids for r in requests):
            raise ValueError("every GenerationRequest needs at least one prompt token")
        rules = FinishRules(self.tokenizer, params, self.eos_token_ids)
        if self.engine == "slots":
            if self._slot_decoder is None:
                from harness.models.hf_slot_decode import SlotDecoder

                self._slot_decoder = SlotDecoder(self.model, self.batch_size, self._use_cuda_graphs, self._compile)
            return self._slot_decoder.generate(requests, params, rules, self.pad_token_id)
        from harness.models.hf_simple_decode import generate_simple

        return generate_simple(self.model, requests, params, rules, self.batch_size, self.pad_token_id)

    def close(self) -> None:
        self._slot_decoder = None
        self.model = None
        if self.device.type == "cuda":
            import torch

            torch.cuda.empty_cache()


def context_length_of(config: Any) -> int | None:
    """The positions a model was built for, under the names configs use for it."""
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _existing_path_or_name(model_path: str) -> str:
    """A local folder, or a hub name; a path-looking string that does not exist is an error, not a hub lookup."""
    if not model_path:
        raise BackendError("hf backend needs a model path or name, e.g. hf:/models/Qwen2.5-Math-1.5B")
    path = Path(model_path).expanduser()
    if path.exists():
        return str(path)
    if model_path.startswith(("/", ".", "~")) or model_path.count("/") > 1:
        raise BackendError(f"model path not found: {model_path}")
    return model_path


def _resolve_dtype(requested: str | None, device: Any) -> Any:
    import torch

    if requested in (None, ""):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if requested == "auto":
        return "auto"
    if requested not in _DTYPES:
        raise BackendError(f"unknown dtype {requested!r}; use one of bfloat16, float16, float32, auto")
    return getattr(torch, _DTYPES[requested])


def _choose_engine(requested: str, config: Any, attn_implementation: str | None) -> str:
    if requested not in ("auto", "simple", "slots"):
        raise BackendError(f"unknown engine {requested!r}; use auto, simple or slots")
    # The slot cache passes its own 4D masks, which sliding-window layers and flash-attention kernels ignore.
    layer_types = set(getattr(config, "layer_types", None) or ["full_attention"])
    slots_ok = layer_types == {"full_attention"} and attn_implementation in ("sdpa", "eager")
    if requested == "slots" and not slots_ok:
        raise BackendError(
            f"engine=slots needs full attention with sdpa or eager (got {sorted(layer_types)}, {attn_implementation})"
        )
    if requested == "auto":
        return "slots" if slots_ok else "simple"
    return requested
