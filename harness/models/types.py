"""The vocabulary every backend speaks: sampling settings, requests, generations, and the backend interface.

Backends take prompts as token ids and return generated token ids, because trajectories in this project are
kept as exact tokens (model segments plus tool segments) for RL trainers. Text is derived from tokens, never
the other way round.

Stopping rules shared by all backends:

* ``eos``: the model emitted one of its end-of-sequence tokens. The EOS token is kept in ``token_ids`` (a
  trainer must see it to learn to stop) but left out of ``text``.
* ``stop``: the decoded generated text contains one of ``SamplingParams.stop``. ``token_ids`` end with the
  token that completed the stop string, and ``text`` is the decode of those ids, so it may run past the stop
  string by the rest of that last token (e.g. stop ``"```output"`` completed by a token ``"output\\n"`` gives
  text ending in ``"```output\\n"``). ``stop_string`` says which stop string matched.
* ``length``: ``max_new_tokens`` tokens were generated without either of the above.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

FinishReason = Literal["stop", "length", "eos"]


class BackendError(RuntimeError):
    """A model backend could not be loaded or used; the message is one line meant for the user."""


class PromptTooLongError(ValueError):
    """A prompt fills the model's context, leaving no room for an answer."""


@dataclass(frozen=True)
class SamplingParams:
    """How to generate. ``temperature == 0`` means greedy decoding (``top_p`` and seeds are then ignored).

    ``seed`` is the fallback for requests that carry none: request ``i`` of a call then uses ``seed + i``.
    ``ignore_eos`` keeps generating past EOS (benchmarks use it to get fixed-length outputs).
    """

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 512
    stop: list[str] = field(default_factory=lambda: ["```output"])
    seed: int = 0
    ignore_eos: bool = False

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        # Copy so later edits to the caller's list can't change frozen params; "" would match at once.
        object.__setattr__(self, "stop", [s for s in self.stop if s])

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def request_seed(self, request: GenerationRequest, index: int) -> int:
        return request.seed if request.seed is not None else self.seed + index


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt, as token ids. ``seed`` makes a sampled continuation reproducible (see ``sampling.py``)."""

    prompt_ids: list[int]
    seed: int | None = None


@dataclass(frozen=True)
class Generation:
    """What the model generated for one request (see the module docstring for the exact stopping rules)."""

    token_ids: list[int]
    text: str
    finish_reason: FinishReason
    stop_string: str | None = None


class ModelBackend:
    """A loaded model that turns prompt token ids into generated token ids.

    Subclasses set ``name`` and ``tokenizer`` (a Hugging Face tokenizer or anything with the same
    ``encode``/``decode``/``apply_chat_template``) and implement ``generate``.
    """

    name: str
    tokenizer: Any
    context_length: int | None = None  # tokens the model attends to (prompt and answer); None: unknown

    def generate(self, requests: list[GenerationRequest], params: SamplingParams) -> list[Generation]:
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        # No special tokens: encoded text is spliced into trajectories (tool outputs), where a BOS would be wrong.
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def encode_prompt(self, text: str) -> list[int]:
        """``encode`` for a whole prompt, refused with PromptTooLongError when it fills the context.

        The length in characters is checked first against what ``context_length`` tokens could hold at
        most, so a huge prompt is refused without tokenizing it (that alone can take minutes and gigabytes).
        """
        limit = self.context_length
        if limit is None:
            return self.encode(text)
        most_chars = self._max_token_chars()
        if most_chars is not None and len(text) > 2 * limit * most_chars:  # x2: margin for normalizers
            raise PromptTooLongError(f"prompt of {len(text)} characters cannot fit the model's {limit}-token context")
        ids = self.encode(text)
        if len(ids) >= limit:
            raise PromptTooLongError(f"prompt of {len(ids)} tokens fills the model's {limit}-token context")
        return ids

    def _max_token_chars(self) -> int | None:
        # A vocabulary entry is spelled with at least one character per character it decodes to (byte-level
        # BPE spells each byte as one character), so its longest entry bounds the characters per token.
        if not hasattr(self, "_longest_token"):
            get_vocab = getattr(self.tokenizer, "get_vocab", None)
            self._longest_token = max(map(len, get_vocab()), default=None) if get_vocab else None
        return self._longest_token

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    def chat_prompt(self, messages: list[dict]) -> str:
        """The prompt text for a conversation, ending where the assistant's reply starts."""
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return plain_chat_prompt(messages, bos_token=self._bos_if_added_by_default())

    def close(self) -> None:
        """Release engine resources (GPU memory, worker processes). Safe to call twice."""

    def _bos_if_added_by_default(self) -> str:
        # encode() never adds special tokens, so a base model that expects a BOS gets it in the prompt text.
        bos = getattr(self.tokenizer, "bos_token", None)
        bos_id = getattr(self.tokenizer, "bos_token_id", None)
        if not bos or bos_id is None:
            return ""
        with_special = self.tokenizer.encode("a", add_special_tokens=True)
        return bos if with_special and with_special[0] == bos_id else ""


def plain_chat_prompt(messages: list[dict], bos_token: str = "") -> str:
    """A readable transcript for models without a chat template (base models)."""
    turns = [f"{message['role'].capitalize()}: {message['content']}" for message in messages]
    return bos_token + "\n\n".join(turns) + "\n\nAssistant:"
