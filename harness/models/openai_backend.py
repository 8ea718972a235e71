"""The OpenAI-compatible backend: any server with ``POST /v1/completions`` (vLLM, SGLang, TGI, llama.cpp...).

Prompts are sent as token ids where the server accepts them (vLLM and SGLang do), else as text: with
``token_prompts=auto`` the first rejection switches this backend to text for good. The generated tokens
come back exactly when the server returns them (vLLM's ``return_token_ids``); otherwise they are the
re-encoding of the returned text, which can differ from what the model sampled at token boundaries.

Stopping follows ``types.py``. The server is asked to keep stop strings in its output (vLLM's
``include_stop_str_in_output``); a server that drops them but reports which one matched (``stop_reason``)
gets it appended back. A server that does neither cannot tell a stop string from EOS: such a finish is
reported as ``eos``.

model_args: ``tokenizer`` (a local tokenizer folder; required, for encode/decode and chat templates),
``concurrency`` (requests in flight, default 16), ``max_retries`` (default 5, with exponential backoff on
connection errors, 408, 429 and 5xx), ``timeout`` (seconds per request, default 600), ``api_key`` (default
``$OPENAI_API_KEY``), ``token_prompts`` (``auto``, ``true``, ``false``), ``max_model_len`` (the model's
context in tokens; default: what the server's ``/models`` reports, as vLLM does, else unknown).
"""

from __future__ import annotations

import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from harness.models.hf import coerce_model_args
from harness.models.stopping import finished_generation
from harness.models.types import BackendError, Generation, GenerationRequest, ModelBackend, SamplingParams

_ARG_TYPES = {"tokenizer": str, "concurrency": int, "max_retries": int, "timeout": float, "api_key": str,
              "token_prompts": str, "backoff_s": float, "max_model_len": int}
_RETRY_STATUSES = {408, 429, 500, 502, 503, 504}


class OpenAIBackend(ModelBackend):
    def __init__(self, model: str, base_url: str, model_args: dict[str, Any] | None = None):
        args = coerce_model_args(model_args, _ARG_TYPES, "openai")
        if not args.get("tokenizer"):
            raise BackendError("the openai backend needs model_args tokenizer=PATH (a local tokenizer folder)")
        if not os.path.isdir(args["tokenizer"]):
            raise BackendError(f"tokenizer path not found: {args['tokenizer']}")
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(args["tokenizer"])
        self.name = model.rstrip("/").rsplit("/", 1)[-1]
        self.model = model
        self.url = base_url.rstrip("/") + "/completions"
        self.concurrency = max(1, args.get("concurrency", 16))
        self.max_retries = max(0, args.get("max_retries", 5))
        self.backoff_s = args.get("backoff_s", 1.0)
        self.token_prompts = args.get("token_prompts", "auto")
        if self.token_prompts not in ("auto", "true", "false"):
            raise BackendError(f"token_prompts must be auto, true or false, not {self.token_prompts!r}")
        api_key = args.get("api_key") or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        import httpx

        self._client = httpx.Client(
            timeout=args.get("timeout", 600.0),
            headers={"Authorization": f"Bearer {api_key}"},
            limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
        )
        self._mode_lock = threading.Lock()
        self.context_length = args.get("max_model_len") or self._server_context_length()

    @classmethod
    def from_spec(cls, target: str, model_args: dict[str, Any] | None = None) -> "OpenAIBackend":
        model, sep, url = target.partition("@")
        if not sep or not model or not url.startswith(("http://", "https://")):
            raise BackendError(f"openai spec must be MODEL@BASE_URL, e.g. openai:qwen@http://127.0.0.1:8000/v1 (got {target!r})")
        return cls(model, url, model_args)

    def generate(self, requests: list[GenerationRequest], params: SamplingParams) -> list[Generation]:
        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            return list(pool.map(lambda pair: self._complete(pair[1], pair[0], params), enumerate(requests)))

    def close(self) -> None:
        self._client.close()

    def _server_context_length(self) -> int | None:
        """vLLM lists each served model's ``max_model_len``; other servers may not, which is fine."""
        import httpx

        try:
            response = self._client.get(self.url.rsplit("/", 1)[0] + "/models", timeout=10.0)
            entries = response.json().get("data", []) if response.status_code == 200 else []
            lengths = [e.get("max_model_len") for e in entries if isinstance(e, dict) and e.get("id") == self.model]
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        return lengths[0] if lengths and isinstance(lengths[0], int) and lengths[0] > 0 else None

    def _complete(self, request: GenerationRequest, index: int, params: SamplingParams) -> Generation:
        while True:
            as_tokens = self.token_prompts != "false"
            payload = self._payload(request, index, params, as_tokens)
            response = self._post_with_retries(payload)
            if response.status_code in (400, 422) and as_tokens and self.token_prompts == "auto":
                with self._mode_lock:
                    self.token_prompts = "false"  # this server wants text prompts; stop offering token ids
                continue
            if response.status_code != 200:
                raise BackendError(f"openai server {self.url} answered {response.status_code}: {_first_line(response.text)}")
            return self._to_generation(response.json()["choices"][0], params)

    def _payload(self, request: GenerationRequest, index: int, params: SamplingParams, as_tokens: bool) -> dict:
        payload: dict[str, Any] = {
            "model": self.model,
            "prompt": list(request.prompt_ids) if as_tokens else self.decode(request.prompt_ids),
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "n": 1,
            # vLLM extensions, ignored by servers that do not know them:
            "include_stop_str_in_output": True,
            "skip_special_tokens": False,
            "return_token_ids": True,
        }
        if params.stop:
            payload["stop"] = list(params.stop)
        if not params.greedy:
            payload["seed"] = params.request_seed(request, index)
        if params.ignore_eos:
            payload["ignore_eos"] = True
        return payload

    def _post_with_retries(self, payload: dict) -> Any:
        import httpx

        for attempt in range(self.max_retries + 1):
            try:
                response = self._client.post(self.url, json=payload)
                if response.status_code not in _RETRY_STATUSES:
                    return response
                failure = f"HTTP {response.status_code}: {_first_line(response.text)}"
            except httpx.TransportError as error:
                failure = f"{type(error).__name__}: {_first_line(str(error))}"
            if attempt < self.max_retries:
                # Exponential backoff with jitter, so many clients do not retry in lockstep.
                time.sleep(self.backoff_s * (2**attempt) * (0.5 + random.random() / 2))
        raise BackendError(f"openai server {self.url} failed after {self.max_retries + 1} attempts ({failure})")

    def _to_generation(self, choice: dict, params: SamplingParams) -> Generation:
        text = choice.get("text") or ""
        server_reason, stop_reason = choice.get("finish_reason"), choice.get("stop_reason")
        stop_string = None
        if server_reason == "length":
            reason = "length"
        elif isinstance(stop_reason, str) and stop_reason in params.stop:
            reason, stop_string = "stop", stop_reason
            if stop_reason not in text:
                text += stop_reason
        else:
            found = [(text.find(s) + len(s), i, s) for i, s in enumerate(params.stop) if s in text]
            reason, stop_string = ("stop", min(found)[2]) if found else ("eos", None)
        token_ids = list(choice["token_ids"]) if choice.get("token_ids") is not None else self.encode(text)
        eos_id = getattr(self.tokenizer, "eos_token_id", None)
        special_ids = set(getattr(self.tokenizer, "all_special_ids", []))
        if reason == "eos" and eos_id is not None and (not token_ids or token_ids[-1] not in special_ids):
            token_ids.append(eos_id)  # keep the turn's end in the trajectory, as the local backends do
        return finished_generation(self.tokenizer, token_ids, reason, stop_string)


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0][:300] if lines else "(empty)"
