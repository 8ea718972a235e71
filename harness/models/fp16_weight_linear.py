"""Linear layers on the CPU in float32 whose weights are all exact float16 values, run by fbgemm's
float16-weight matrix product.

Decoding on the CPU multiplies a few rows (one per sequence in the batch) by every weight matrix at each
step, so the step is bound by reading the weights from memory, and MKL's float32 product is slow at so
few rows. fbgemm keeps the weights packed as float16 (half the bytes) and widens them to float32 in
registers: every product of a weight and an activation is the same exact float32 product, summed in
float32. Only the order of the additions differs from MKL's, a last-bit difference of the kind MKL
itself shows between batches of fewer and more than four rows, so greedy text stays the same unless two
tokens tie to within rounding (the lm-eval bench checks every generated text).

Weights qualify when converting them to float16 and back changes nothing: checkpoints stored in float16
(the embedded SmolLM2 is) or bfloat16 within float16's range, loaded as float32. Any other layer keeps
``torch.nn.Linear``.
"""

from __future__ import annotations

import ctypes
from typing import Any

import torch


class Fp16WeightLinear(torch.nn.Module):
    """``torch.nn.Linear`` with its weight packed for fbgemm as float16; inputs and outputs stay float32."""

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        bias = None if linear.bias is None else linear.bias.detach()
        self.packed = torch.ops.quantized.linear_prepack_fp16(linear.weight.detach(), bias)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic_fp16(inputs, self.packed)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, weight=float16 (fbgemm)"


def fp16_gemm_available() -> bool:
    return "fbgemm" in torch.backends.quantized.supported_engines


def is_fp16_exact(linear: torch.nn.Linear) -> bool:
    """float32 weights (and bias) that survive a round trip through float16 unchanged."""
    tensors = [linear.weight] if linear.bias is None else [linear.weight, linear.bias]
    return all(t.dtype == torch.float32 and torch.equal(t.to(torch.float16).to(torch.float32), t) for t in tensors)


def use_fp16_weight_linears(model: Any) -> int:
    """Replace every qualifying ``torch.nn.Linear`` of ``model`` in place; returns how many were replaced.

    The float32 weights of replaced layers are released unless something else holds them (tied input
    embeddings keep theirs), so the model then serves inference only: it cannot be trained or saved.
    """
    if not fp16_gemm_available():
        return 0
    replaced = 0
    with torch.no_grad():
        for name, module in list(model.named_modules()):
            if type(module) is torch.nn.Linear and is_fp16_exact(module):
                parent_name, _, child_name = name.rpartition(".")
                setattr(model.get_submodule(parent_name), child_name, Fp16WeightLinear(module))
                replaced += 1
    _return_freed_memory()
    return replaced


def _return_freed_memory() -> None:
    """Weight matrices of a few MB come from glibc's heap, which keeps what they freed (about 0.45 GB for
    SmolLM2) unless asked to hand it back to the system."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to ask
