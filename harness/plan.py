"""`harness plan`: what a training run will need per GPU and how long an iteration takes, before it runs.

The arithmetic, per GPU, for N GPUs and a model of P parameters (all byte counts):

* **Training states**, fp32 master weights, fp32 gradients and AdamW's two fp32 moments: 16·P bytes in
  all, divided by N under FSDP full shard and replicated under DDP. Under FSDP,
  one layer's parameters are gathered in bf16 at a time, with the next one prefetched: 2 x 2 bytes x
  the largest layer.
* **Activations** of one micro-batch of T tokens (micro-batch rows x (prompt + response budget), capped
  by the trainer's ``micro_batch_tokens`` budget but never below one whole row). With gradient checkpointing, each layer keeps only its
  bf16 input (2·T·h) and one layer at a time is recomputed (its working set taken as T·(16·h + 6·i)
  bytes in bf16: attention projections, scores through a fused kernel, the MLP's gate, up and product);
  without it every layer holds that working set. The logits of the micro-batch are computed in bf16 and
  log-softmaxed in fp32 (6·T·V bytes).
* **vLLM** (rollouts): its bf16 weights (2·P, divided by the tensor-parallel size) and a KV cache of
  2 (K and V) x layers x KV heads x head dim x 2 bytes per token, sized for the concurrent sequences
  (prompt plus the response budget each). Colocated with training, both live on the GPU at once (no
  sleep mode assumed), so the peak is their sum.

Time per EM iteration (or per RL step): E-step generated tokens = rollouts x the response budget x
the mean fill (assumed 0.5 of the budget unless told) over the decode throughput; M-step FLOPs =
6·P·tokens (forward and backward) + 2·P·tokens (recomputed checkpoints) + 2·P·tokens (π_old's
log-probs), over N x peak x MFU. The throughputs are assumptions, printed as such, unless measured
figures are given (``--rollout-tokens-per-s``, ``--mfu``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

GIB = 1024**3


@dataclass(frozen=True)
class ModelShape:
    name: str
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    tied_embeddings: bool

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def layer_params(self) -> int:
        kv_width = self.kv_heads * self.head_dim
        attention = 2 * self.hidden * self.hidden + self.hidden + 2 * (self.hidden * kv_width + kv_width)
        return attention + 3 * self.hidden * self.intermediate + 2 * self.hidden

    @property
    def params(self) -> int:
        embeddings = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        return self.layers * self.layer_params + embeddings + self.hidden

    @classmethod
    def from_config(cls, path: Path) -> ModelShape:
        """A Hugging Face ``config.json`` (Llama/Qwen2 field names)."""
        config = json.loads(path.read_text(encoding="utf-8"))
        return cls(name=path.parent.name, layers=config["num_hidden_layers"], hidden=config["hidden_size"],
                   intermediate=config["intermediate_size"], heads=config["num_attention_heads"],
                   kv_heads=config.get("num_key_value_heads", config["num_attention_heads"]), vocab=config["vocab_size"],
                   tied_embeddings=bool(config.get("tie_word_embeddings", False)))


SHAPES = {
    "qwen2.5-0.5b": ModelShape("qwen2.5-0.5b", 24, 896, 4864, 14, 2, 151936, True),
    "qwen2.5-1.5b": ModelShape("qwen2.5-1.5b", 28, 1536, 8960, 12, 2, 151936, True),
    "qwen2.5-7b": ModelShape("qwen2.5-7b", 28, 3584, 18944, 28, 4, 152064, False),
}

# Dense bf16 peak FLOP/s of the accelerators a plan can name.
PEAK_FLOPS = {"h100": 989e12, "h200": 989e12, "a100": 312e12}
# Assumed vLLM decode throughput per GPU (tokens/s) at large batch, by parameter count; stated, not measured here.
ASSUMED_DECODE_TOKENS_PER_S = ((1e9, 20_000.0), (3e9, 10_000.0), (1e12, 3_000.0))


@dataclass(frozen=True)
class Workload:
    """What one iteration (EM) or one step (RL) does, read from a trainer config."""

    rollouts: int
    response_tokens: int
    prompt_tokens: int
    train_sequences: int
    micro_batch_size: int
    gradient_checkpointing: bool
    micro_batch_tokens: int = 0  # 0: no token budget

    @property
    def micro_batch_token_count(self) -> int:
        row = self.prompt_tokens + self.response_tokens
        tokens = self.micro_batch_size * row
        return max(min(tokens, self.micro_batch_tokens), row) if self.micro_batch_tokens else tokens


@dataclass(frozen=True)
class Hardware:
    gpus: int
    gpu_memory_gib: float
    accelerator: str = "h100"
    strategy: str = "fsdp"
    tensor_parallel: int = 1
    concurrent_sequences: int = 256


@dataclass
class Plan:
    memory_gib: dict[str, float]
    seconds: dict[str, float]
    assumptions: list[str]

    @property
    def peak_gib(self) -> float:
        return sum(self.memory_gib.values())


def memory_per_gpu(shape: ModelShape, work: Workload, hw: Hardware) -> dict[str, float]:
    sharded = hw.strategy == "fsdp"
    shards = hw.gpus if sharded else 1
    tokens = work.micro_batch_token_count
    layer_working_set = tokens * (16 * shape.hidden + 6 * shape.intermediate)
    if work.gradient_checkpointing:
        activations = shape.layers * 2 * tokens * shape.hidden + layer_working_set
    else:
        activations = shape.layers * layer_working_set
    kv_per_token = 2 * shape.layers * shape.kv_heads * shape.head_dim * 2
    kv_tokens = hw.concurrent_sequences * (work.prompt_tokens + work.response_tokens)
    figures = {
        "weights (fp32 master)": 4 * shape.params / shards,
        "gradients (fp32)": 4 * shape.params / shards,
        "optimiser (AdamW, fp32)": 8 * shape.params / shards,
        "gathered layers (bf16)": 4 * shape.layer_params if sharded else 0,
        "activations (micro-batch)": activations,
        "logits (micro-batch)": 6 * tokens * shape.vocab,
        "vLLM weights (bf16)": 2 * shape.params / hw.tensor_parallel,
        "vLLM KV cache": kv_per_token * kv_tokens / hw.tensor_parallel,
    }
    return {name: value / GIB for name, value in figures.items()}


def seconds_per_iteration(shape: ModelShape, work: Workload, hw: Hardware, rollout_tokens_per_s: float | None,
                          mfu: float, response_fill: float) -> tuple[dict[str, float], list[str]]:
    assumptions = [f"responses fill {response_fill:.0%} of the {work.response_tokens}-token budget on average",
                   f"M-step MFU {mfu:.0%} of {PEAK_FLOPS[hw.accelerator] / 1e12:.0f} TFLOP/s bf16 peak ({hw.accelerator})"]
    if rollout_tokens_per_s is None:
        rollout_tokens_per_s = next(rate for limit, rate in ASSUMED_DECODE_TOKENS_PER_S if shape.params <= limit)
        assumptions.append(f"vLLM decode {rollout_tokens_per_s:,.0f} tokens/s per GPU (assumed for this size; not measured here)")
    else:
        assumptions.append(f"vLLM decode {rollout_tokens_per_s:,.0f} tokens/s per GPU (given)")
    response = work.response_tokens * response_fill
    generated = work.rollouts * response
    trained_tokens = work.train_sequences * (work.prompt_tokens + response)
    flops_per_token = (6 + (2 if work.gradient_checkpointing else 0) + 2) * shape.params
    return {
        "rollouts": generated / (rollout_tokens_per_s * hw.gpus),
        "update": trained_tokens * flops_per_token / (hw.gpus * PEAK_FLOPS[hw.accelerator] * mfu),
    }, assumptions


def make_plan(shape: ModelShape, work: Workload, hw: Hardware, rollout_tokens_per_s: float | None = None,
              mfu: float = 0.4, response_fill: float = 0.5) -> Plan:
    seconds, assumptions = seconds_per_iteration(shape, work, hw, rollout_tokens_per_s, mfu, response_fill)
    return Plan(memory_per_gpu(shape, work, hw), seconds, assumptions)


def workload_from_config(config, prompt_tokens: int) -> Workload:
    """An EM iteration (``EMConfig``) or an RL step (``RLConfig``) as rollouts and trained sequences."""
    if hasattr(config, "queries_per_iteration"):
        rollouts = config.queries_per_iteration * (2 * config.k + config.free_rollouts)
        train_sequences = config.queries_per_iteration * config.samples_per_query
    else:
        rollouts = train_sequences = config.prompts_per_step * config.group_size
        train_sequences *= config.updates_per_batch
    return Workload(rollouts=rollouts, response_tokens=config.max_tokens, prompt_tokens=prompt_tokens,
                    train_sequences=train_sequences, micro_batch_size=config.micro_batch_size,
                    gradient_checkpointing=bool(getattr(config, "gradient_checkpointing", False)),
                    micro_batch_tokens=getattr(config, "micro_batch_tokens", 0))


def render(plan: Plan, shape: ModelShape, hw: Hardware, unit: str) -> str:
    lines = [f"model {shape.name}: {shape.params / 1e9:.2f}B parameters; {hw.gpus} x {hw.accelerator} "
             f"({hw.gpu_memory_gib:g} GiB), {hw.strategy}, vLLM tensor parallel {hw.tensor_parallel}", "",
             "memory per GPU                    GiB"]
    lines += [f"  {name:<30} {value:8.2f}" for name, value in plan.memory_gib.items()]
    lines += [f"  {'peak (colocated)':<30} {plan.peak_gib:8.2f}", "", f"time per {unit}"]
    lines += [f"  {name:<30} {value / 60:8.1f} min" for name, value in plan.seconds.items()]
    lines += [f"  {'total':<30} {sum(plan.seconds.values()) / 60:8.1f} min", "", "assumptions:"]
    lines += [f"  - {text}" for text in plan.assumptions]
    return "\n".join(lines)


def plan_command(
    preset: Annotated[str, typer.Option(help="a train-em preset (e.g. paper-7b) or a train-rl preset (e.g. qwen2.5-7b)")],
    gpus: Annotated[int, typer.Option(min=1, help="GPUs the run will use")] = 8,
    gpu_memory: Annotated[float, typer.Option(min=1, help="GiB of memory per GPU")] = 80.0,
    shape: Annotated[str, typer.Option(help=f"model shape: {', '.join(SHAPES)}, or a folder/config.json")] = "qwen2.5-7b",
    accelerator: Annotated[str, typer.Option(help=f"for the FLOP/s peak: {', '.join(PEAK_FLOPS)}")] = "h100",
    strategy: Annotated[str, typer.Option(help="fsdp (full shard) or ddp (replicated states)")] = "fsdp",
    tensor_parallel: Annotated[int, typer.Option(min=1, help="vLLM tensor-parallel size")] = 1,
    concurrent_sequences: Annotated[int, typer.Option(min=1, help="sequences vLLM decodes at once (KV cache size)")] = 256,
    prompt_tokens: Annotated[int, typer.Option(min=0, help="mean prompt length in tokens")] = 256,
    rollout_tokens_per_s: Annotated[float | None, typer.Option(help="measured vLLM decode tokens/s per GPU")] = None,
    mfu: Annotated[float, typer.Option(min=0.01, max=1.0, help="M-step model FLOP utilisation")] = 0.4,
    response_fill: Annotated[float, typer.Option(min=0.01, max=1.0, help="mean response length / budget")] = 0.5,
) -> None:
    """Per-GPU memory and time per EM iteration (or RL step) of a preset; exits 1 when it does not fit."""
    from harness.em.config import EMConfig
    from harness.rl.config import RLConfig

    def fail(message: str) -> None:
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(1)

    trainer = next((cls for cls in (EMConfig, RLConfig) if preset in cls.PRESETS), None)
    if trainer is None:
        fail(f"unknown preset {preset!r}; train-em has {', '.join(EMConfig.PRESETS)}, train-rl has {', '.join(RLConfig.PRESETS)}")
    if accelerator not in PEAK_FLOPS:
        fail(f"unknown accelerator {accelerator!r}; choose one of {', '.join(PEAK_FLOPS)}")
    if strategy not in ("fsdp", "ddp"):
        fail(f"unknown strategy {strategy!r}; choose fsdp or ddp")
    if shape in SHAPES:
        model = SHAPES[shape]
    else:
        config_path = Path(shape) / "config.json" if Path(shape).is_dir() else Path(shape)
        if not config_path.is_file():
            fail(f"unknown shape {shape!r}: not one of {', '.join(SHAPES)} and no config.json there")
        try:
            model = ModelShape.from_config(config_path)
        except (KeyError, ValueError) as exc:
            fail(f"{config_path}: not a Llama/Qwen2-style config ({exc})")
    hw = Hardware(gpus, gpu_memory, accelerator, strategy, tensor_parallel, concurrent_sequences)
    plan = make_plan(model, workload_from_config(trainer.preset(preset), prompt_tokens), hw, rollout_tokens_per_s, mfu,
                     response_fill)
    typer.echo(render(plan, model, hw, "EM iteration" if trainer is EMConfig else "RL step"))
    if plan.peak_gib > gpu_memory:
        fail(f"the plan needs {plan.peak_gib:.1f} GiB per GPU, more than the {gpu_memory:g} GiB there: use more GPUs, "
             "a smaller micro-batch or fewer concurrent sequences")
