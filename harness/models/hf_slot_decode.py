"""The fast decode loop for Hugging Face models: continuous batching over a slot KV cache, with CUDA graphs.

Plain ``model.generate`` spends most of a decode step launching hundreds of small kernels from Python and
growing its cache by concatenation. Here:

* the KV cache is preallocated (``slot_kv_cache.py``) and every decode step has the same shapes, so on CUDA
  the whole step (model forward and token choice) is captured once as a CUDA graph and replayed;
* each slot holds one request; when a request finishes, its slot is refilled from the queue at once, so
  long outputs do not hold a batch of short ones hostage and the batch stays full while work remains;
* stop strings and EOS are checked on the CPU while the GPU computes the next step (one small
  device-to-host copy per step).

On the CPU the same loop runs eagerly, where shapes may change between steps, so each step computes only
the span of slots in use over only the cache positions written so far, and finished sequences are judged
at once (there is no GPU work to overlap with). The tests check that it produces exactly the tokens of
the reference loop in ``hf_simple_decode.py``.
"""

from __future__ import annotations

import warnings
from collections import deque
from typing import Any

from harness.models.hf_simple_decode import cache_keyword
from harness.models.sampling import choose_next_tokens
from harness.models.slot_kv_cache import SlotKVCache, decode_attention_mask, prefill_attention_mask
from harness.models.stopping import FinishRules, SequenceProgress
from harness.models.types import Generation, GenerationRequest, SamplingParams

# Prompts prefilled together are padded to the longest; this bounds the padded tokens per prefill forward.
PREFILL_TOKEN_BUDGET = 16384


class SlotDecoder:
    """Owns the slot cache and captured decode graphs of one model, and reuses them across calls."""

    def __init__(self, model: Any, max_slots: int, use_cuda_graphs: bool, compile_step: bool = False):
        self.model = model
        self.max_slots = max_slots
        self.num_slots = 0
        self.use_cuda_graphs = use_cuda_graphs
        self.compile_step = compile_step
        self.cache: SlotKVCache | None = None
        self._graphs: dict[tuple, _CapturedStep] = {}
        self._cache_arg = cache_keyword(model)

    def generate(
        self, requests: list[GenerationRequest], params: SamplingParams, rules: FinishRules, pad_token_id: int
    ) -> list[Generation]:
        import torch

        # Idle slots still cost attention reads, so a call with few requests gets a smaller power-of-two
        # batch (one captured graph per size) rather than the full one.
        slots = min(self.max_slots, 1 << (len(requests) - 1).bit_length())
        self._ensure_cache(slots, max(len(r.prompt_ids) for r in requests) + params.max_new_tokens + 1)
        positions = self.cache.write_positions
        self.temperature.fill_(max(params.temperature, 1e-6))

        # Admitted in order of prompt length, so prompts prefilled together pad little (results still come
        # back in request order, and each request keeps its own seed).
        queue = deque(sorted(range(len(requests)), key=lambda i: len(requests[i].prompt_ids)))
        self._owner: list[int | None] = [None] * slots  # request index held by each slot
        self._progress: dict[int, SequenceProgress] = {}
        self._results: list[Generation | None] = [None] * len(requests)
        self._host = {"tokens": [0] * slots, "positions": [0] * slots, "seeds": [0] * slots}
        owner, host = self._owner, self._host

        with torch.inference_mode():
            unjudged: list[tuple[int, int]] = []  # (slot, token) from the last step, not yet checked
            while True:
                self._fill_free_slots(requests, queue, params, rules, pad_token_id)
                active = [slot for slot in range(slots) if owner[slot] is not None]
                if not active:
                    break
                self.tokens.copy_(torch.tensor(host["tokens"]), non_blocking=True)
                positions.copy_(torch.tensor(host["positions"]), non_blocking=True)
                self.seeds.copy_(torch.tensor(host["seeds"]), non_blocking=True)
                # On CUDA the step is only queued here: the previous step's tokens are checked for stop
                # strings while the GPU computes, so the CPU work costs no GPU time. A sequence found
                # finished has this step's token discarded (one wasted row-step, never a wrong token).
                first_slot, output = self._step(params, active)
                for slot, token in unjudged:
                    self._judge(slot, token, rules)
                chosen = output.tolist()
                unjudged = []
                for slot in active:
                    if owner[slot] is not None:
                        host["tokens"][slot] = chosen[slot - first_slot]
                        host["positions"][slot] += 1
                        unjudged.append((slot, chosen[slot - first_slot]))
                if not self.use_cuda_graphs:
                    # An eager step has already finished: judging now frees a finished slot for the very
                    # next step instead of computing one more token for it.
                    for slot, token in unjudged:
                        self._judge(slot, token, rules)
                    unjudged = []
        return [r for r in self._results if r is not None]

    def _judge(self, slot: int, token: int, rules: FinishRules) -> None:
        """Append a generated token to its sequence; a finished sequence gives up its slot."""
        index = self._owner[slot]
        if rules.append(self._progress[index], token):
            self._results[index] = rules.to_generation(self._progress.pop(index))
            self._owner[slot] = None
            self._host["tokens"][slot] = self._host["positions"][slot] = 0

    def _fill_free_slots(
        self, requests: list[GenerationRequest], queue: deque, params: SamplingParams, rules: FinishRules, pad_id: int
    ) -> None:
        """Prefill waiting requests into free slots until either runs out (some finish on their first token)."""
        while queue:
            free = [slot for slot, index in enumerate(self._owner) if index is None]
            if not free:
                return
            for slot, index, first_token in self._admit(requests, queue, free, params, pad_id):
                self._owner[slot] = index
                self._progress[index] = rules.new_progress()
                self._host["tokens"][slot] = first_token
                self._host["positions"][slot] = len(requests[index].prompt_ids)
                self._host["seeds"][slot] = params.request_seed(requests[index], index)
                self._judge(slot, first_token, rules)

    def _ensure_cache(self, slots: int, needed_len: int) -> None:
        """Reuse the cache when it has ``slots`` rows and fits without being more than twice too long."""
        import torch

        if self.cache is not None and slots == self.num_slots and needed_len <= self.cache.max_len <= 2 * needed_len:
            return
        self.cache, self._graphs, self.num_slots = None, {}, slots
        if self.model.device.type == "cuda":
            torch.cuda.empty_cache()
        max_len = -(-needed_len // 128) * 128
        device = self.model.device
        # The decode step reads its inputs from these fixed tensors (updated in place before each step),
        # so that a captured graph sees the current values.
        self.tokens = torch.zeros(self.num_slots, dtype=torch.int64, device=device)
        self.seeds = torch.zeros(self.num_slots, dtype=torch.int64, device=device)
        self.temperature = torch.ones((), dtype=torch.float32, device=device)
        positions = torch.zeros(self.num_slots, dtype=torch.int64, device=device)
        self.cache = SlotKVCache(self.num_slots, max_len, positions)

    def _admit(
        self, requests: list[GenerationRequest], queue: deque, free: list[int], params: SamplingParams, pad_id: int
    ) -> list[tuple[int, int, int]]:
        """Prefill waiting requests into free slots; returns (slot, request index, first token) for each."""
        import torch

        taken: list[tuple[int, int]] = []
        width = 0
        while queue and len(taken) < len(free):
            new_width = max(width, len(requests[queue[0]].prompt_ids))
            if taken and new_width * (len(taken) + 1) > PREFILL_TOKEN_BUDGET:
                break
            width = new_width
            taken.append((free[len(taken)], queue.popleft()))
        device, dtype = self.model.device, self.model.dtype
        input_ids = torch.full((len(taken), width), pad_id, dtype=torch.int64)
        pads = []
        for row, (_, index) in enumerate(taken):
            prompt = requests[index].prompt_ids
            input_ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.int64)
            pads.append(width - len(prompt))
        position_ids = (torch.arange(width)[None, :] - torch.tensor(pads)[:, None]).clamp(min=0)
        with self.cache.prefilling([(slot, pad) for (slot, _), pad in zip(taken, pads)]):
            logits = self.model(
                input_ids=input_ids.to(device), position_ids=position_ids.to(device),
                attention_mask=prefill_attention_mask(pads, width, dtype, device),
                use_cache=True, logits_to_keep=1, **{self._cache_arg: self.cache},
            ).logits[:, -1, :]
        seeds = torch.tensor([params.request_seed(requests[i], i) for _, i in taken], device=device)
        first_positions = torch.tensor([len(requests[i].prompt_ids) for _, i in taken], device=device)
        first = choose_next_tokens(logits, params.temperature, params.top_p, seeds, first_positions, params.greedy)
        return [(slot, index, token) for (slot, index), token in zip(taken, first.tolist())]

    def _decode_step(self, params: SamplingParams, rows: slice = slice(None), length: int | None = None) -> Any:
        """One token for each slot in ``rows`` (idle ones compute too: fixed shapes make graphs possible),
        attending to the first ``length`` cache positions (all of them by default)."""
        positions = self.cache.write_positions[rows]
        length = length or self.cache.max_len
        logits = self.model(
            input_ids=self.tokens[rows, None], position_ids=positions[:, None],
            attention_mask=decode_attention_mask(positions, length, self.model.dtype),
            use_cache=True, logits_to_keep=1, **{self._cache_arg: self.cache},
        ).logits[:, -1, :]
        return choose_next_tokens(logits, self.temperature, params.top_p, self.seeds[rows], positions + 1, params.greedy)

    def _step(self, params: SamplingParams, active: list[int]) -> tuple[int, Any]:
        """The next token of slots ``first..`` (``first`` returned with them), covering every active slot."""
        if not self.use_cuda_graphs:
            # Eager shapes may change from step to step: compute only the span of slots in use, over only the
            # cache positions written so far, rather than every slot over the whole preallocated length.
            first, last = active[0], active[-1] + 1
            length = max(self._host["positions"][first:last]) + 1
            with self.cache.decoding(slice(first, last), length):
                return first, self._decode_step(params, slice(first, last), length)
        key = (params.greedy, params.top_p)
        if key not in self._graphs:
            step = lambda: self._decode_step(params)  # noqa: E731  (captured with this call's params)
            if self.compile_step:
                import torch

                step = torch.compile(step, mode="max-autotune-no-cudagraphs", dynamic=False)
            try:
                self._graphs[key] = _CapturedStep(step)
            except RuntimeError as error:
                # Some model code cannot be captured (host syncs, dynamic shapes); eager still works.
                warnings.warn(f"CUDA graph capture failed, decoding eagerly: {str(error).splitlines()[0]}")
                self.use_cuda_graphs = False
                return self._step(params, active)
        return 0, self._graphs[key].replay()


class _CapturedStep:
    """A decode step recorded once as a CUDA graph; replaying it re-runs every kernel on the current inputs."""

    def __init__(self, step: Any, warmup_runs: int = 2):
        import torch

        # Warm-up runs (on a side stream, as graph capture requires) repeat a real step: they write the same
        # keys and values at the same positions, so they leave the cache as the step itself would.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup_runs):
                step()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.output = step()

    def replay(self) -> Any:
        self.graph.replay()
        return self.output
