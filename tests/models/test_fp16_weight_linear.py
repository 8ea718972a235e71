"""Linear layers with exact float16 weights run by fbgemm on the CPU: the same greedy tokens as torch's
float32 layers, applied only where the round trip through float16 loses nothing."""

from __future__ import annotations

import pytest

from harness.models import SamplingParams, load_backend
from tests.models.test_slot_decode_cpu import PROMPTS, generate, requests_for

from .tiny_models import build_model, build_tokenizer

torch = pytest.importorskip("torch")
from harness.models import fp16_weight_linear  # noqa: E402  (needs torch)

pytestmark = pytest.mark.skipif(not fp16_weight_linear.fp16_gemm_available(), reason="this torch has no fbgemm")


@pytest.fixture(scope="module")
def fp16_exact_dirs(tmp_path_factory):
    """Tiny Llama (no biases) and Qwen2 (biased q, k, v) whose float32 weights are all float16 values."""
    tokenizer = build_tokenizer()
    dirs = {}
    for kind in ("llama", "qwen2"):
        model = build_model(kind, tokenizer)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.copy_(parameter.half().float())
        folder = tmp_path_factory.mktemp(f"fp16-exact-{kind}")
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        dirs[kind] = str(folder)
    return dirs


def fp16_layers(backend):
    return [m for m in backend.model.modules() if isinstance(m, fp16_weight_linear.Fp16WeightLinear)]


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_fp16_layers_give_the_greedy_tokens_of_float32_layers(fp16_exact_dirs, kind):
    packed = load_backend(f"hf:{fp16_exact_dirs[kind]}", {"device": "cpu"})
    plain = load_backend(f"hf:{fp16_exact_dirs[kind]}", {"device": "cpu", "fp16_gemm": "false"})
    # Two layers of q, k, v, o, gate, up and down, and the untied output head.
    assert len(fp16_layers(packed)) == 15 and not fp16_layers(plain)
    assert not any(isinstance(m, torch.nn.Linear) for m in packed.model.modules())

    requests = requests_for(plain)
    params = SamplingParams(max_new_tokens=24, stop=[], ignore_eos=True)
    reference = [g.token_ids for g in generate(plain, "simple", 1, requests, params)]
    assert len({tuple(t) for t in reference}) == len(PROMPTS)
    for engine, batch_size in (("simple", 1), ("slots", 3), ("slots", 8)):
        assert [g.token_ids for g in generate(packed, engine, batch_size, requests, params)] == reference

    ids = torch.tensor([requests[1].prompt_ids])
    with torch.inference_mode():
        assert torch.allclose(packed.model(input_ids=ids).logits, plain.model(input_ids=ids).logits, rtol=0, atol=1e-5)


def test_layers_float16_cannot_hold_exactly_stay_torch_linear(tiny_model_dirs, fp16_exact_dirs):
    # The shared tiny models have random float32 weights: no layer qualifies.
    assert not fp16_layers(load_backend(f"hf:{tiny_model_dirs['llama']}", {"device": "cpu"}))

    layer = torch.nn.Linear(4, 3)
    with torch.no_grad():
        layer.weight.copy_(layer.weight.half().float())
        layer.bias.copy_(layer.bias.half().float())
    assert fp16_weight_linear.is_fp16_exact(layer)
    for change in (1e-6, 70000.0):  # below float16's precision; beyond its range
        nudged = torch.nn.Linear(4, 3)
        with torch.no_grad():
            nudged.weight.copy_(layer.weight)
            nudged.bias.copy_(layer.bias)
            nudged.bias[0] += change
        assert not fp16_weight_linear.is_fp16_exact(nudged)

    model = torch.nn.Sequential(layer, torch.nn.Linear(3, 2))
    assert fp16_weight_linear.use_fp16_weight_linears(model) == 1
    assert isinstance(model[0], fp16_weight_linear.Fp16WeightLinear) and type(model[1]) is torch.nn.Linear
    inputs = torch.randn(5, 4)
    assert torch.allclose(model[0](inputs), torch.nn.functional.linear(inputs, layer.weight, layer.bias), atol=1e-6)
