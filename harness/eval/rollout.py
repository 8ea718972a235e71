"""The rollout engine: batched, multi-round tool-integrated generation (shared by eval, RL and EM).

One round generates for every live trajectory at once. A generation that stops at "```output"
has the last ```python block of that round run in the trajectory's own sandbox session (cells of
many trajectories run in parallel), and "```output\\n...\\n```\\n" is appended as a tool segment;
the next round continues from there. A trajectory ends at EOS, at its token budget (model and tool
tokens together), at the tool-call cap (a further "```output" then ends it: ``tool_cap``), or when
it asks for output without having written code (``no_code``).

Trajectories are kept as segments of exact token ids: prompt, then model and tool segments. The
loss mask is 1 on model tokens and 0 on tool tokens, so trainers never learn to produce tool
output and never re-tokenize text (which drifts at segment boundaries).
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace

from harness.defaults import MAX_TOOL_CALLS
from harness.models import GenerationRequest, ModelBackend, SamplingParams

TOOL_STOP = "```output"
_CODE_BLOCK = re.compile(r"```python[ \t]*\n(.*?)```", re.DOTALL)


@dataclass
class Segment:
    kind: str  # "model" or "tool"
    token_ids: list[int]
    text: str


@dataclass
class ToolCall:
    code: str
    status: str
    feedback: str
    duration_s: float
    restarted: bool = False
    truncated: bool = False


@dataclass
class Trajectory:
    prompt_ids: list[int]
    seed: int
    segments: list[Segment] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    @property
    def response_ids(self) -> list[int]:
        return [token for segment in self.segments for token in segment.token_ids]

    @property
    def response_text(self) -> str:
        return "".join(segment.text for segment in self.segments)

    @property
    def loss_mask(self) -> list[int]:
        return [int(segment.kind == "model") for segment in self.segments for _ in segment.token_ids]

    @property
    def used_code(self) -> bool:
        return bool(self.tool_calls)

    def to_dict(self) -> dict:
        return {
            "finish_reason": self.finish_reason,
            "segments": [asdict(segment) for segment in self.segments],
            "tool_calls": [asdict(call) for call in self.tool_calls],
        }


def last_code_block(text: str) -> str | None:
    """The last ```python block before the final "```output" marker of a model segment."""
    head = text[: text.rfind(TOOL_STOP)] if TOOL_STOP in text else text
    blocks = _CODE_BLOCK.findall(head)
    return blocks[-1] if blocks else None


def tool_segment_text(model_text: str, feedback: str) -> str:
    """The text appended after a model segment that ended with the output marker."""
    opening = "" if model_text.endswith("\n") else "\n"
    return f"{opening}{feedback.rstrip()}\n```\n"


def round_seed(seed: int, round_index: int) -> int:
    """A distinct, reproducible seed for each round of one trajectory."""
    return (seed * 1_000_003 + round_index * 7_919) % (2**31 - 1)


@dataclass
class RolloutStats:
    generate_s: float = 0.0
    tool_s: float = 0.0
    rounds: int = 0
    cells: int = 0


class RolloutEngine:
    """Runs trajectories for a batch of prompts with one backend and (for tool methods) one sandbox."""

    def __init__(
        self,
        backend: ModelBackend,
        params: SamplingParams,
        *,
        tools: bool,
        sandbox=None,
        max_tool_calls: int = MAX_TOOL_CALLS,
        max_tokens: int = 1024,
        tool_workers: int = 16,
    ) -> None:
        if tools and sandbox is None:
            raise ValueError("a tool-using rollout needs a sandbox")
        self.backend = backend
        self.params = replace(params, stop=[TOOL_STOP] if tools else [])
        self.tools = tools
        self.sandbox = sandbox
        self.max_tool_calls = max_tool_calls
        self.max_tokens = max_tokens
        self.tool_workers = tool_workers
        self.stats = RolloutStats()

    def run(self, prompts: list[list[int]], seeds: list[int], prefixes: list[list[int]] | None = None) -> list[Trajectory]:
        """Roll out every prompt. A prefix forces how the response starts (the EM E-step forces the decision
        to use code this way): it becomes the first model segment, trained on like any model token, and counts
        against the token budget: a prefix that fills it ends the response there ("length")."""
        trajectories = [Trajectory(list(prompt), seed) for prompt, seed in zip(prompts, seeds, strict=True)]
        for trajectory, prefix in zip(trajectories, prefixes or [], strict=False):
            if prefix:
                trajectory.segments.append(Segment("model", list(prefix), self.backend.decode(prefix)))
                if self._budget(trajectory) <= 0:
                    trajectory.finish_reason = "length"
        sessions: dict[int, object] = {}
        try:
            round_index = 0
            while live := [t for t in trajectories if not t.done]:
                pending = self._generate_round(live, round_index)
                self._run_cells(pending, sessions)
                for trajectory in live:
                    if trajectory.done and id(trajectory) in sessions:
                        sessions.pop(id(trajectory)).close()
                round_index += 1
                self.stats.rounds += 1
        finally:
            for session in sessions.values():
                session.close()
        return trajectories

    def _budget(self, trajectory: Trajectory) -> int:
        return self.max_tokens - len(trajectory.response_ids)

    def _generate_round(self, live: list[Trajectory], round_index: int) -> list[tuple[Trajectory, str]]:
        # One call for the whole round: each trajectory is cut to its own budget afterwards.
        params = replace(self.params, max_new_tokens=max(self._budget(t) for t in live))
        requests = [GenerationRequest(t.prompt_ids + t.response_ids, seed=round_seed(t.seed, round_index)) for t in live]
        started = time.perf_counter()
        generations = self.backend.generate(requests, params)
        self.stats.generate_s += time.perf_counter() - started
        pending = []
        for trajectory, generation in zip(live, generations, strict=True):
            token_ids, text, finish = generation.token_ids, generation.text, generation.finish_reason
            budget = self._budget(trajectory)
            if len(token_ids) > budget:
                token_ids, finish = token_ids[:budget], "length"
                text = self.backend.decode(token_ids)
            trajectory.segments.append(Segment("model", list(token_ids), text))
            if finish != "stop" or not self.tools:
                trajectory.finish_reason = finish
            elif len(trajectory.tool_calls) >= self.max_tool_calls:
                trajectory.finish_reason = "tool_cap"
            elif (code := last_code_block(text)) is None:
                trajectory.finish_reason = "no_code"
            elif self._budget(trajectory) <= 0:
                trajectory.finish_reason = "length"
            else:
                pending.append((trajectory, code))
        return pending

    def _run_cells(self, pending: list[tuple[Trajectory, str]], sessions: dict[int, object]) -> None:
        if not pending:
            return

        def run_one(item: tuple[Trajectory, str]):
            trajectory, code = item
            session = sessions.get(id(trajectory))
            if session is None:
                session = sessions[id(trajectory)] = self.sandbox.session()
            return session.run(code)

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=min(self.tool_workers, len(pending))) as executor:
            results = list(executor.map(run_one, pending))
        self.stats.tool_s += time.perf_counter() - started
        self.stats.cells += len(pending)
        for (trajectory, code), result in zip(pending, results):
            feedback = result.feedback()
            text = tool_segment_text(trajectory.segments[-1].text, feedback)
            token_ids = self.backend.encode(text)
            budget = self._budget(trajectory)
            if len(token_ids) >= budget:
                token_ids = token_ids[:budget]
                text = self.backend.decode(token_ids)
                trajectory.finish_reason = "length"
            trajectory.segments.append(Segment("tool", token_ids, text))
            trajectory.tool_calls.append(
                ToolCall(code, result.status, feedback, round(result.duration_s, 4), result.restarted, result.truncated)
            )
