"""A preallocated KV cache in which every batch row ("slot") holds one sequence at its own length.

Transformers' own caches keep all rows at one common length, which forces left padding and makes a row
that finished early impossible to reuse. Here each slot has its own write position, so a finished
sequence's slot can take the next waiting request while the others keep decoding (continuous batching),
and shapes never change between decode steps, so a decode step can be captured once as a CUDA graph.

The cache plugs into an unmodified Hugging Face model: the attention layers call ``update(keys, values,
layer_idx)`` and attend over whatever it returns, under the 4D additive mask the caller passes (a 4D mask
is used as given, so the model never asks the cache for lengths). Two modes:

* prefill (``prefilling(...)``): a left-padded batch of new prompts runs normally; each row's real
  (unpadded) keys and values are copied into its slot starting at position 0;
* decode (default): one new token per slot is written at ``write_positions[slot]`` and attention sees the
  slot's whole row; the mask hides everything after the slot's own position (stale or unused entries).
  An eager (CPU) step may narrow this with ``decoding(rows, length)``: the batch holds only the slots in
  ``rows`` and attends to the first ``length`` positions, so idle slots at the edges and the unused tail of
  the cache cost nothing (a captured CUDA graph needs the full fixed shapes instead).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator


class SlotKVCache:
    """Keys and values of shape ``[num_slots, kv_heads, max_len, head_dim]`` per layer, allocated on first use."""

    # Read by transformers' mask helpers; this cache is never compiled by transformers itself.
    is_compileable = False

    def __init__(self, num_slots: int, max_len: int, write_positions: Any):
        self.num_slots = num_slots
        self.max_len = max_len
        # Shared with the decode step's static inputs, so a CUDA graph sees in-place updates.
        self.write_positions = write_positions
        self.keys: list[Any] = []
        self.values: list[Any] = []
        self._prefill_rows: list[tuple[int, int]] | None = None
        self._decode_window: tuple[slice, int] | None = None

    @contextmanager
    def prefilling(self, rows: list[tuple[int, int]]) -> Iterator[None]:
        """Within this block, batch row ``i`` is a prompt for slot ``rows[i][0]`` left-padded by ``rows[i][1]``."""
        self._prefill_rows = rows
        try:
            yield
        finally:
            self._prefill_rows = None

    @contextmanager
    def decoding(self, rows: slice, length: int) -> Iterator[None]:
        """Within this block, a decode batch holds slots ``rows`` and attends to positions ``0..length-1``."""
        self._decode_window = (rows, length)
        try:
            yield
        finally:
            self._decode_window = None

    def update(self, key_states: Any, value_states: Any, layer_idx: int, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        if len(self.keys) <= layer_idx:
            self._allocate_layer(layer_idx, key_states)
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        if self._prefill_rows is not None:
            width = key_states.shape[2]
            if width > self.max_len:
                raise ValueError(f"prompt of {width} tokens does not fit a cache of {self.max_len}")
            for row, (slot, pad) in enumerate(self._prefill_rows):
                keys[slot, :, : width - pad] = key_states[row, :, pad:]
                values[slot, :, : width - pad] = value_states[row, :, pad:]
            # The prompts attend only to themselves during prefill.
            return key_states, value_states
        rows, length = self._decode_window or (slice(None), self.max_len)
        # Slicing the first dimension gives views, so the scatter writes into the cache itself.
        keys, values = keys[rows], values[rows]
        heads, head_dim = keys.shape[1], keys.shape[3]
        index = self.write_positions[rows].view(-1, 1, 1, 1).expand(-1, heads, 1, head_dim)
        keys.scatter_(2, index, key_states)
        values.scatter_(2, index, value_states)
        return keys[:, :, :length], values[:, :, :length]

    def _allocate_layer(self, layer_idx: int, like: Any) -> None:
        import torch

        while len(self.keys) <= layer_idx:
            shape = (self.num_slots, like.shape[1], self.max_len, like.shape[3])
            self.keys.append(torch.zeros(shape, dtype=like.dtype, device=like.device))
            self.values.append(torch.zeros(shape, dtype=like.dtype, device=like.device))

    # Transformers calls these on whatever cache it is given; positions and masks are supplied explicitly,
    # so the answers only need to be harmless.
    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0

    def get_max_cache_shape(self, layer_idx: int = 0) -> int:
        return self.max_len


def decode_attention_mask(positions: Any, max_len: int, dtype: Any) -> Any:
    """Additive mask ``[slots, 1, 1, max_len]``: slot ``s`` sees cache entries ``0..positions[s]``."""
    import torch

    columns = torch.arange(max_len, device=positions.device)
    visible = columns[None, :] <= positions[:, None]
    return _additive(visible, dtype)[:, None, None, :]


def prefill_attention_mask(pads: list[int], width: int, dtype: Any, device: Any) -> Any:
    """Additive mask ``[batch, 1, width, width]``: causal, hiding each row's left padding.

    A padding query would otherwise see no key at all, and softmax over nothing gives NaN that leaks into
    later layers' values; letting it see itself keeps every row finite (its output is never used).
    """
    import torch

    columns = torch.arange(width, device=device)
    causal = columns[None, :] <= columns[:, None]
    real_key = columns[None, :] >= torch.tensor(pads, device=device)[:, None]
    visible = (causal[None] & real_key[:, None, :]) | torch.eye(width, dtype=torch.bool, device=device)[None]
    return _additive(visible, dtype)[:, None, :, :]


def _additive(visible: Any, dtype: Any) -> Any:
    import torch

    return torch.zeros(visible.shape, dtype=dtype, device=visible.device).masked_fill(
        ~visible, torch.finfo(dtype).min
    )
