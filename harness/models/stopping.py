"""Decide, token by token, when one sequence has finished (EOS, stop string, or length).

Checking a stop string means decoding text, and decoding every sequence's whole output after every token
would cost O(n^2) per sequence, which dominates a fast GPU decode loop. Two shortcuts keep it cheap
while giving the same answer as decoding everything:

1. Only the last few tokens are decoded. A stop string of ``n`` characters that first appears when token
   ``t`` arrives lies inside the text of the last ``4 * n + 2`` tokens: every token adds at least one byte,
   a character is at most 4 UTF-8 bytes, and the extra tokens absorb a garbled partial character at the
   left edge of the window.
2. Most tokens cannot complete a stop string at all: the completing token must contribute the stop string's
   last character. A token's text decoded on its own contains that character, or is empty, or holds a
   partial UTF-8 byte (shown as U+FFFD). Any other token is skipped without decoding. Stop strings that end
   in whitespace disable the filter, because SentencePiece tokenizers strip a token's leading space when it
   is decoded alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.models.types import FinishReason, Generation, SamplingParams

_REPLACEMENT_CHAR = "\ufffd"


class StopStringMatcher:
    """Finds the stop string (if any) completed by the newest token of a generated sequence."""

    def __init__(self, tokenizer: Any, stop_strings: list[str]):
        self.tokenizer = tokenizer
        self.stop_strings = [s for s in stop_strings if s]
        longest = max((len(s) for s in self.stop_strings), default=0)
        # A window's garbled left edge shows U+FFFD, so a stop string containing it needs the whole output
        # (a window of 0 tokens means everything: ids[-0:] is the whole list).
        garbled_edge_matters = any(_REPLACEMENT_CHAR in s for s in self.stop_strings)
        self.window_tokens = 0 if garbled_edge_matters else 4 * longest + 2
        self._final_chars = {s[-1] for s in self.stop_strings}
        self._filter_tokens = not any(c.isspace() for c in self._final_chars)
        self._may_complete: dict[int, bool] = {}

    def match(self, generated_ids: list[int]) -> str | None:
        """The stop string that the last token of ``generated_ids`` completed, or None."""
        if not self.stop_strings or not generated_ids:
            return None
        if self._filter_tokens and not self._may_complete_a_stop(generated_ids[-1]):
            return None
        window = self.tokenizer.decode(generated_ids[-self.window_tokens :], skip_special_tokens=False)
        # Several stop strings can appear at once (e.g. "```" and "```output"): the one that ends first wins,
        # ties going to the earlier in the list (vLLM's rule, so backends agree).
        found = [(window.find(s) + len(s), i, s) for i, s in enumerate(self.stop_strings) if s in window]
        return min(found)[2] if found else None

    def _may_complete_a_stop(self, token_id: int) -> bool:
        cached = self._may_complete.get(token_id)
        if cached is None:
            piece = self.tokenizer.decode([token_id], skip_special_tokens=False)
            cached = not piece or _REPLACEMENT_CHAR in piece or any(c in piece for c in self._final_chars)
            self._may_complete[token_id] = cached
        return cached


@dataclass
class SequenceProgress:
    """The growing output of one request and whether it has finished."""

    max_new_tokens: int
    token_ids: list[int] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    stop_string: str | None = None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


class FinishRules:
    """Applies EOS, stop-string and length rules to each new token of each sequence."""

    def __init__(self, tokenizer: Any, params: SamplingParams, eos_token_ids: set[int]):
        self.tokenizer = tokenizer
        self.params = params
        self.eos_token_ids = set() if params.ignore_eos else set(eos_token_ids)
        self.matcher = StopStringMatcher(tokenizer, params.stop)

    def new_progress(self) -> SequenceProgress:
        return SequenceProgress(max_new_tokens=self.params.max_new_tokens)

    def append(self, progress: SequenceProgress, token_id: int) -> bool:
        """Add one generated token; returns True when the sequence has now finished."""
        progress.token_ids.append(token_id)
        if token_id in self.eos_token_ids:
            progress.finish_reason = "eos"
        elif (stop := self.matcher.match(progress.token_ids)) is not None:
            progress.finish_reason, progress.stop_string = "stop", stop
        elif len(progress.token_ids) >= progress.max_new_tokens:
            progress.finish_reason = "length"
        return progress.finished

    def to_generation(self, progress: SequenceProgress) -> Generation:
        if not progress.finished:
            raise RuntimeError("a sequence was returned before it finished")
        return finished_generation(self.tokenizer, progress.token_ids, progress.finish_reason, progress.stop_string)


def finished_generation(
    tokenizer: Any, token_ids: list[int], finish_reason: FinishReason, stop_string: str | None
) -> Generation:
    """Build a Generation whose text is the decode of its tokens, minus a final EOS token."""
    text_ids = token_ids[:-1] if finish_reason == "eos" else token_ids
    text = tokenizer.decode(text_ids, skip_special_tokens=False)
    return Generation(token_ids=list(token_ids), text=text, finish_reason=finish_reason, stop_string=stop_string)


def eos_token_ids_of(model_config: Any, generation_config: Any, tokenizer: Any) -> set[int]:
    """Every token id that ends a turn for this model (generation config, model config and tokenizer)."""
    ids: set[int] = set()
    for source in (generation_config, model_config, tokenizer):
        value = getattr(source, "eos_token_id", None) if source is not None else None
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids
