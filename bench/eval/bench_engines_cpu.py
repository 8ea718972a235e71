"""The hf decode paths side by side on the CPU: the simple engine, the slot engine with torch's float32
linear layers, and the slot engine with fbgemm's float16-weight layers (``fp16_gemm``, the default).

    .venv/bin/python bench/eval/bench_engines_cpu.py [--limit 30] [--max-tokens 256] [--widths 8 16] [--repeats 3] [--threads 0]

Loads the embedded SmolLM2-135M twice (float32; once with ``fp16_gemm=false``) and generates greedily for
the chat prompts of the first ``--limit`` GSM8K problems (the ``cot`` method), alternating the variants
(simple, slots, slots+fp16, simple, ...) at each decode width. The ``--chunk`` requests handed to one ``generate`` call play the part of the
eval runner's ``--batch-size`` (problems per generation batch). Every run's token ids must equal the first
run's, or the bench stops: a faster engine that changes greedy output is no use.

Prints one JSON line per run (wall and CPU seconds) and a summary with each variant's speed-up over
the one before it (median and range over the repeats); ratios above 1 mean the later variant is faster.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 16], help="decode batch widths (model_args batch_size)")
    parser.add_argument("--chunk", type=int, default=0, help="requests per generate call (0: all of them at once)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: the CPUs this process may use)")
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from harness.eval.methods import load_method
    from harness.eval.tasks import load_samples, load_task
    from harness.models import GenerationRequest, SamplingParams, load_backend
    from harness.models.threads import set_torch_threads

    set_torch_threads(args.threads or None)
    plain = load_backend("smollm2", {"device": "cpu", "dtype": "float32", "fp16_gemm": "false"})
    packed = load_backend("smollm2", {"device": "cpu", "dtype": "float32"})
    variants = {"simple": (plain, "simple"), "slots": (plain, "slots"), "slots+fp16": (packed, "slots")}
    method = load_method("cot")
    samples, _ = load_samples(load_task("gsm8k"), args.data_dir)
    requests = [GenerationRequest(plain.encode_prompt(plain.chat_prompt(method.messages(s.question))))
                for s in samples[: args.limit]]
    params = SamplingParams(max_new_tokens=args.max_tokens, stop=[])
    chunk = args.chunk or len(requests)

    reference = None
    times: dict[tuple[int, str], list[tuple[float, float]]] = {}
    print(f"loadavg at start: {Path('/proc/loadavg').read_text().strip()}", file=sys.stderr)
    for repeat in range(args.repeats):
        for width in args.widths:
            for variant, (backend, engine) in variants.items():
                backend.engine, backend.batch_size, backend._slot_decoder = engine, width, None
                wall, cpu = time.perf_counter(), time.process_time()
                generations = []
                for start in range(0, len(requests), chunk):
                    generations += backend.generate(requests[start : start + chunk], params)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                tokens = [g.token_ids for g in generations]
                if reference is None:
                    reference = tokens
                elif tokens != reference:
                    sys.exit(f"{variant} at width {width} changed the greedy tokens")
                times.setdefault((width, variant), []).append((wall, cpu))
                print(json.dumps({"repeat": repeat, "width": width, "variant": variant, "wall_s": round(wall, 2),
                                  "cpu_s": round(cpu, 2), "tokens": sum(map(len, tokens)),
                                  "loadavg": Path("/proc/loadavg").read_text().split()[0]}), flush=True)
    summary = {}
    names = list(variants)
    for width in args.widths:
        for before, after in zip(names, names[1:]):
            pairs = zip(times[(width, before)], times[(width, after)])
            wall_ratios, cpu_ratios = zip(*[(a[0] / b[0], a[1] / b[1]) for a, b in pairs])
            summary[f"width {width}: {before}/{after}"] = {"wall": _spread(wall_ratios), "cpu": _spread(cpu_ratios)}
    print(json.dumps({"chunk": chunk, "summary": summary, "loadavg_end": Path("/proc/loadavg").read_text().strip()}))


def _spread(values) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


if __name__ == "__main__":
    main()
