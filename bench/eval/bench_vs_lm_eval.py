"""`harness eval` side by side with lm-evaluation-harness 0.4.13: same model, problems, prompt and greedy text.

    .venv/bin/python bench/eval/bench_vs_lm_eval.py [--limit 30] [--max-tokens 256] [--widths 8 16] [--repeats 3] [--threads 0]

Both tools run the embedded SmolLM2-135M-Instruct (the folder our smollm2 backend converts it to) in float32
on the CPU, greedy, over the first ``--limit`` GSM8K test problems with the ``cot`` method's system prompt
and the model's chat template. lm-eval lives in its own virtualenv (``.cache/lm-eval-venv``, created here on
first use with the same torch wheel) and reads the same JSONL through a local custom task written here.
At decode width W, lm-eval runs ``--batch_size W`` and we run ``--model-args batch_size=W`` (W sequences per
forward pass on both sides) with ``--batch-size`` = ``--chunk`` problems per generation batch and checkpoint
(default: W, as lm-eval has no checkpoints to match).

Each command runs whole (start-up included) in a fresh output folder, alternating ours and lm-eval's
(ABAB...) after one untimed warm-up of each that also checks the prompts and generated texts are identical.
Reports per run wall seconds, CPU seconds (user+sys, children included) and peak RSS, then lm-eval/ours
ratios (median and range over the repeats): above 1 means we are faster. The goal of issue 23 is >= 1.3.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LM_EVAL_VERSION = "0.4.13"
TASK_NAME = "harness_bench_gsm8k_cot"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--chunk", type=int, default=0, help="our --batch-size (0: the decode width)")
    parser.add_argument("--engine", default="auto", help="our hf engine (auto, simple, slots)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads for both tools (0: each tool's default, all CPUs here)")
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--venv", default=str(REPO / ".cache" / "lm-eval-venv"))
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_DATASETS_CACHE": str(REPO / ".cache" / "hf-datasets"), "TOKENIZERS_PARALLELISM": "false"}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)  # torch's default thread count in lm-eval's process
    lm_eval = ensure_lm_eval(Path(args.venv))
    model_dir = converted_model_dir()
    system = load_system_prompt()

    with tempfile.TemporaryDirectory(prefix="bench-vs-lm-eval-") as scratch:
        task_dir = write_task(Path(scratch) / "task", Path(args.data_dir) / "gsm8k_test.jsonl", args.max_tokens)
        runs = {}
        for width in args.widths:
            chunk = args.chunk or width
            ours = [str(REPO / ".venv" / "bin" / "harness"), "eval", "--model", "smollm2", "--task", "gsm8k",
                    "--method", "cot", "--limit", str(args.limit), "--max-tokens", str(args.max_tokens),
                    "--batch-size", str(chunk), "--data-dir", args.data_dir, "--threads", str(args.threads),
                    "--model-args", f"device=cpu,dtype=float32,batch_size={width},engine={args.engine}"]
            theirs = [str(lm_eval), "--model", "hf", "--model_args", f"pretrained={model_dir},dtype=float32", "--device", "cpu",
                      "--tasks", TASK_NAME, "--include_path", str(task_dir), "--apply_chat_template",
                      "--system_instruction", system, "--batch_size", str(width), "--limit", str(args.limit),
                      "--log_samples"]
            check_identical(run(ours, "--output-dir", scratch, env), run(theirs, "--output_path", scratch, env), width)
            for repeat in range(args.repeats):
                for tool, command, flag in (("ours", ours, "--output-dir"), ("lm-eval", theirs, "--output_path")):
                    result = run(command, flag, scratch, env)
                    runs.setdefault((width, tool), []).append(result)
                    print(json.dumps({"width": width, "chunk": chunk, "repeat": repeat, "tool": tool,
                                      **{k: v for k, v in result.items() if k != "out"}}), flush=True)
        print(json.dumps(summarise(runs, args.widths), indent=1))


def ensure_lm_eval(venv: Path) -> Path:
    """lm-eval's command line in its own virtualenv (never the project's), installed on first use with our
    versions of torch and transformers, so both tools run the same kernels."""
    executable = venv / "bin" / "lm_eval"
    ready = venv / "bin" / "python"
    if ready.exists() and subprocess.run([str(ready), "-c", "import lm_eval, transformers"]).returncode == 0:
        return executable
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    code = "import torch, transformers; print(torch.__version__.split('+')[0], transformers.__version__)"
    torch_version, transformers_version = subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"torch=={torch_version}",
                    f"transformers=={transformers_version}", f"lm_eval[hf]=={LM_EVAL_VERSION}"], check=True)
    return executable


def converted_model_dir() -> Path:
    code = "from harness.models.smollm2 import converted_model_dir; print(converted_model_dir())"
    return Path(subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-c", code],
                               check=True, capture_output=True, text=True).stdout.strip())


def load_system_prompt() -> str:
    code = "from harness.eval.methods import load_method; print(load_method('cot').system, end='')"
    return subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-c", code],
                          check=True, capture_output=True, text=True).stdout


def write_task(folder: Path, data_file: Path, max_tokens: int) -> Path:
    """An lm-eval task over our JSONL: the user turn is the bare question, as in our cot method."""
    folder.mkdir(parents=True)
    (folder / f"{TASK_NAME}.yaml").write_text(
        f"task: {TASK_NAME}\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {json.dumps(str(data_file))}\n"
        "test_split: test\n"
        "output_type: generate_until\n"
        'doc_to_text: "{{question}}"\n'
        "doc_to_target: answer\n"
        "target_delimiter: \"\"\n"
        "generation_kwargs:\n"
        '  until: ["<|im_end|>"]\n'
        "  do_sample: false\n"
        f"  max_gen_toks: {max_tokens}\n"
        "metric_list:\n  - metric: exact_match\n"
    )
    return folder


def run(command: list[str], output_flag: str, scratch: str, env: dict) -> dict:
    """Run one whole command in a fresh output folder; wall, CPU (with its children) and peak RSS."""
    out = tempfile.mkdtemp(dir=scratch)
    started = time.perf_counter()
    process = subprocess.Popen([*command, output_flag, out], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        sys.exit(f"{command[0]} failed:\n{output.decode(errors='replace')[-3000:]}")
    return {"wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024), "loadavg": Path("/proc/loadavg").read_text().split()[0],
            "out": out}


def check_identical(ours: dict, theirs: dict, width: int) -> None:
    """Same prompts in, same greedy text out, problem by problem (matched by question)."""
    [our_file] = glob.glob(f"{ours['out']}/**/samples.jsonl", recursive=True)
    [their_file] = glob.glob(f"{theirs['out']}/**/samples_*.jsonl", recursive=True)
    our_records = {r["question"]: r for r in map(json.loads, Path(our_file).read_text().splitlines())}
    their_records = {r["doc"]["question"]: r for r in map(json.loads, Path(their_file).read_text().splitlines())}
    if our_records.keys() != their_records.keys():
        sys.exit(f"width {width}: the two tools ran different problems")
    for question, record in our_records.items():
        theirs_record = their_records[question]
        if record["prompt"] != theirs_record["arguments"]["gen_args_0"]["arg_0"]:
            sys.exit(f"width {width}: prompts differ for {question[:60]!r}")
        if record["response"] != theirs_record["resps"][0][0]:
            sys.exit(f"width {width}: generated texts differ for {question[:60]!r}:\n"
                     f"ours:    {record['response']!r}\nlm-eval: {theirs_record['resps'][0][0]!r}")
    print(f"width {width}: prompts and greedy texts identical for all {len(our_records)} problems", file=sys.stderr)


def summarise(runs: dict, widths: list[int]) -> dict:
    """lm-eval/ours per repeat (runs were alternated, so repeat i of each ran back to back)."""
    summary = {}
    for width in widths:
        pairs = list(zip(runs[(width, "ours")], runs[(width, "lm-eval")]))
        summary[f"width {width}"] = {
            metric: _spread([theirs[metric] / ours[metric] for ours, theirs in pairs])
            for metric in ("wall_s", "cpu_s", "peak_rss_mb")
        } | {"ours_wall_s": [r["wall_s"] for r, _ in pairs], "lm_eval_wall_s": [r["wall_s"] for _, r in pairs]}
    summary["loadavg_end"] = Path("/proc/loadavg").read_text().strip()
    return summary


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


if __name__ == "__main__":
    main()
