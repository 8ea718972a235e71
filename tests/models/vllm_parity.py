"""Check the vllm backend against the hf backend on the embedded SmolLM2 model.

Run by ``scripts/vllm-suite.sh`` inside a venv that has vLLM (not collected by pytest: vLLM's engine must be
started from a ``__main__`` guard). Prints one JSON summary and exits non-zero when a check fails.

Checks: greedy token ids equal the hf backend's, without and with stop strings (finish reasons and stop
strings too); sampled outputs repeat for the same request seeds whatever the batch order; ``load_weights``
changes the outputs when weights change and restores them when the original weights are pushed back.
"""

from __future__ import annotations

import json
import os
import sys
import time

QUESTIONS = [
    "What is 2+3?",
    "Write a python program that prints 7*8, in a ```python block.",
    "Name three prime numbers.",
    "Hi",
]


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from harness.models import GenerationRequest, SamplingParams, load_backend
    from harness.models.smollm2 import converted_model_dir

    started = time.time()
    hf = load_backend("smollm2", {"device": "cpu", "dtype": "float32"})
    vllm_args = {"dtype": os.environ.get("VLLM_SUITE_DTYPE", "float32"), "max_model_len": 1024, "colocate": True,
                 # Compiling takes minutes on the CPU and tests nothing of ours: off unless VLLM_SUITE_EAGER=0.
                 "enforce_eager": os.environ.get("VLLM_SUITE_EAGER", "1") == "1"}
    vl = load_backend(f"vllm:{converted_model_dir()}", vllm_args)
    loaded = time.time()
    requests = [GenerationRequest(hf.encode(hf.chat_prompt([{"role": "user", "content": q}]))) for q in QUESTIONS]
    checks: dict[str, object] = {}

    for label, params in {
        "greedy": SamplingParams(max_new_tokens=40, stop=[]),
        "greedy_with_stops": SamplingParams(max_new_tokens=40, stop=["```output", "\n\n", "5"]),
    }.items():
        expected, got = hf.generate(requests, params), vl.generate(requests, params)
        checks[label] = [
            {
                "same_tokens": e.token_ids == g.token_ids,
                "same_finish": (e.finish_reason, e.stop_string) == (g.finish_reason, g.stop_string),
                "hf": [e.finish_reason, e.stop_string, e.text],
                "vllm": [g.finish_reason, g.stop_string, g.text],
            }
            for e, g in zip(expected, got)
        ]

    sampled = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=20, stop=[])
    seeded = [GenerationRequest(r.prompt_ids, seed=100 + i) for i, r in enumerate(requests)]
    first = vl.generate(seeded, sampled)
    reordered = vl.generate(seeded[::-1], sampled)[::-1]
    checks["seeded_sampling_repeats"] = [a.token_ids == b.token_ids for a, b in zip(first, reordered)]

    greedy = SamplingParams(max_new_tokens=20, stop=[])
    before = vl.generate(requests[:2], greedy)
    original = {name: tensor.detach().clone() for name, tensor in hf.model.state_dict().items()}
    # SmolLM2 ties lm_head to the embeddings: vLLM writes both names into one tensor, so both get the change.
    scrambled = [(n, t.flip(0) if n.endswith(("embed_tokens.weight", "lm_head.weight")) else t) for n, t in original.items()]
    vl.load_weights(scrambled)
    changed = vl.generate(requests[:2], greedy)
    vl.load_weights(original.items())
    restored = vl.generate(requests[:2], greedy)
    checks["load_weights_changes_outputs"] = [a.token_ids != b.token_ids for a, b in zip(before, changed)]
    checks["load_weights_restores_outputs"] = [a.token_ids == b.token_ids for a, b in zip(before, restored)]

    passed = (
        all(c["same_tokens"] and c["same_finish"] for key in ("greedy", "greedy_with_stops") for c in checks[key])
        and all(checks["seeded_sampling_repeats"])
        and any(checks["load_weights_changes_outputs"])
        and all(checks["load_weights_restores_outputs"])
    )
    summary = {"passed": passed, "load_s": round(loaded - started, 1), "total_s": round(time.time() - started, 1), **checks}
    print(json.dumps(summary, indent=1, ensure_ascii=False))
    vl.close()
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
