"""A scripted policy: a ModelBackend whose replies are fixed per round, with character-level tokens.

It honours the backend contract (stop strings kept with the token that completes them, budgets,
EOS) so the rollout engine is tested exactly, with no model weights.
"""

from __future__ import annotations

from harness.models import Generation, GenerationRequest, ModelBackend, SamplingParams

EOS = 0


class CharTokenizer:
    chat_template = None
    bos_token = None
    bos_token_id = None

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(ch) for ch in text]

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return "".join(chr(i) for i in ids if i != EOS)


class ScriptedBackend(ModelBackend):
    """``script(prompt_text) -> reply``: the reply for the conversation so far (prompt + response)."""

    name = "scripted"

    def __init__(self, script) -> None:
        self.tokenizer = CharTokenizer()
        self.script = script
        self.calls: list[int] = []

    def generate(self, requests: list[GenerationRequest], params: SamplingParams) -> list[Generation]:
        self.calls.append(len(requests))
        out = []
        for request in requests:
            reply = self.script(self.decode(request.prompt_ids))
            ids, finish, stop_string = self.encode(reply) + [EOS], "eos", None
            for stop in params.stop:
                at = reply.find(stop)
                if at != -1:
                    ids, finish, stop_string = self.encode(reply[: at + len(stop)]), "stop", stop
                    break
            if len(ids) > params.max_new_tokens:
                ids, finish, stop_string = ids[: params.max_new_tokens], "length", None
            out.append(Generation(ids, self.decode(ids), finish, stop_string))
        return out
