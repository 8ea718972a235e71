"""Choose the next token from logits: greedy, or sampled with a per-request seed that does not depend on batching.

A sampled token is ``argmax(logits / temperature + gumbel_noise)`` over the top-p nucleus (the Gumbel-max
trick draws exactly from the softmax). The noise is not drawn from a stateful generator: it is a hash of
``(request seed, absolute position of the token in its sequence, vocabulary index)``. So:

* the noise a request sees is the same whichever other requests share its batch, in whatever order, and
  whether the sequence was generated in one call or resumed from a saved prefix over several calls;
* the whole computation is plain tensor arithmetic, so it runs inside a captured CUDA graph.

What is guaranteed: for identical logits, the same (seed, prompt, params) give the same tokens. Logits
themselves can differ in the last bits between batch shapes on a GPU (different matmul kernels), which can
flip a near-tie; on the CPU in float32 the tests see identical outputs across batch compositions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

_MASK32 = 0xFFFFFFFF


def _mul32(x: "torch.Tensor", constant: int) -> "torch.Tensor":
    """``(x * constant) mod 2**32`` for int64 tensors holding 32-bit values, without int64 overflow."""
    low, high = constant & 0xFFFF, constant >> 16
    return (x * low + (((x * high) & 0xFFFF) << 16)) & _MASK32


def _mix32(x: "torch.Tensor") -> "torch.Tensor":
    """A 32-bit integer hash with good avalanche (the "lowbias32" finaliser)."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def gumbel_noise(seeds: "torch.Tensor", positions: "torch.Tensor", vocab_size: int) -> "torch.Tensor":
    """Standard Gumbel noise of shape ``[batch, vocab_size]`` keyed by each row's (seed, position)."""
    import torch

    seeds = seeds.to(torch.int64)
    row_key = _mix32((seeds & _MASK32) ^ _mix32((seeds >> 32) & _MASK32))
    row_key = _mix32(row_key ^ _mix32(positions.to(torch.int64) & _MASK32))
    second_key = _mix32(row_key ^ 0x9E3779B9)
    vocab = torch.arange(vocab_size, device=seeds.device, dtype=torch.int64)
    bits = _mix32(_mix32((vocab[None, :] + row_key[:, None]) & _MASK32) ^ second_key[:, None])
    # 24 random bits centred in their bucket give a uniform strictly inside (0, 1), so both logs are finite.
    uniform = ((bits >> 8).to(torch.float32) + 0.5) * (1.0 / (1 << 24))
    return -torch.log(-torch.log(uniform))


def choose_next_tokens(
    logits: "torch.Tensor",
    temperature: "float | torch.Tensor",
    top_p: float,
    seeds: "torch.Tensor",
    positions: "torch.Tensor",
    greedy: bool,
) -> "torch.Tensor":
    """Next token per row of ``logits`` (``[batch, vocab]``); ``positions`` are the new tokens' positions."""
    import torch

    logits = logits.float()
    if greedy:
        return torch.argmax(logits, dim=-1)
    scaled = logits / temperature
    if top_p < 1.0:
        scaled = _keep_top_p(scaled, top_p)
    return torch.argmax(scaled + gumbel_noise(seeds, positions, logits.shape[-1]), dim=-1)


def _keep_top_p(scaled_logits: "torch.Tensor", top_p: float) -> "torch.Tensor":
    """Mask every token outside the smallest set whose probability reaches ``top_p`` (always keeps the best)."""
    import torch

    sorted_logits, order = torch.sort(scaled_logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    mass_before = torch.cumsum(probs, dim=-1) - probs
    sorted_logits = sorted_logits.masked_fill(mass_before >= top_p, float("-inf"))
    return torch.empty_like(scaled_logits).scatter_(-1, order, sorted_logits)
