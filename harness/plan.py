"""`harness plan`: what a training run will need per GPU and how long an iteration takes, before it runs.

The run is the trainer's own: its config is resolved as ``train-em`` / ``train-rl`` resolve theirs
(preset, ``--config`` file, then ``--set`` fields; the same validation) and laid out by the same function
(harness/training/layout.py: strategy, rollout backend, dtypes, vLLM's share), which refuses, with the
trainer's words, what the trainer refuses.

The arithmetic, per GPU, for N processes (one per GPU) and a model of P parameters (byte counts; w = 4
for fp32 weights, 2 for bf16; c likewise for the compute dtype; phase in brackets):

* **Training states** [held]: weights, gradients (w each) and AdamW's two moments (2w) per parameter,
  4w·P in all (16·P for fp32 masters), divided by N under FSDP full shard, replicated otherwise.
* **FSDP** [update]: two layers gathered at a time (the one computing, the next prefetched):
  2·c·layer parameters; and the **root unit**, the parameters outside the decoder layers (embeddings,
  lm_head unless tied, final norm: V·h·(1 if tied else 2) + h), which full_shard gathers at the start
  of the forward and keeps unsharded through the backward: c·(V·h·(1 or 2) + h).
* **Activations** [update] of one micro-batch of T tokens (micro-batch rows x (prompt + response
  budget), capped by ``micro_batch_tokens`` but never below one whole row). With gradient checkpointing,
  each layer keeps only its input (c·T·h) and one layer at a time is recomputed (its working set taken
  as c·T·(8·h + 3·i): attention projections, scores through a fused kernel, the MLP's gate, up and
  product); without it every layer holds that working set. The logits are computed in the compute dtype
  and log-softmaxed in fp32: (c + 4)·T·V.
* **Rollouts.** A colocated vLLM engine takes ``vllm_gpu_memory_utilization`` x the GPU's memory
  (weights, in the engine's dtype, and KV cache inside that share; its weights must fit there):
  train-em's during the E-step only [rollouts] (released before the M-step), train-rl's throughout
  [held] unless TRL's sleep mode is on [rollouts]. vLLM in server mode takes nothing on the training
  GPUs. Generating on the policy (``hf``) holds a KV cache of 2 (K and V) x layers x KV heads x head
  dim x c bytes per token for the concurrent sequences (prompt plus the response budget each) [rollouts].
* **E-step weight refresh under FSDP** [rollouts]. On the hf path the trainers generate on an unsharded
  generation copy in the compute dtype, c·P [held], refreshed before each E-step (train-rl: each
  rollout batch) from the full state gathered on every process in the weights' dtype: a transient of
  w·P. Weights bound for vLLM are gathered one tensor at a time (train-em's save: accelerate moves each
  to the CPU; train-rl: TRL pushes each into the engine): w x the largest tensor (the embeddings, V·h,
  or an MLP matrix, h·i).

The peak is what is held plus the larger of the two phases (the rollouts and the update do not run at once).

Time per EM iteration (or per RL step): E-step generated tokens = rollouts x the response budget x
the mean fill (assumed 0.5 of the budget unless told) over the decode throughput; M-step FLOPs =
6·P·tokens (forward and backward) + 2·P·tokens (recomputed checkpoints) + 2·P·tokens (π_old's
log-probs), over N x peak x MFU. The throughputs are assumptions, printed as such, unless measured
figures are given (``--rollout-tokens-per-s``, ``--mfu``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from harness.model_shape import SHAPES, ModelShape, model_shape
from harness.training.layout import RunLayout

GIB = 1024**3
BYTES = {"float32": 4, "bfloat16": 2}
HELD, ROLLOUTS, UPDATE = "held", "rollouts", "update"


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
    gpu_memory_gib: float
    concurrent_sequences: int  # sequences each process generates at once on the hf path
    accelerator: str = "h100"


@dataclass
class Plan:
    memory: dict[str, tuple[float, str]]  # name -> (GiB per GPU, phase)
    seconds: dict[str, float]
    assumptions: list[str]

    @property
    def memory_gib(self) -> dict[str, float]:
        return {name: value for name, (value, _) in self.memory.items()}

    def phase_gib(self, phase: str) -> float:
        return sum(value for value, held_in in self.memory.values() if held_in == phase)

    @property
    def peak_gib(self) -> float:
        return self.phase_gib(HELD) + max(self.phase_gib(ROLLOUTS), self.phase_gib(UPDATE))


def memory_per_gpu(shape: ModelShape, work: Workload, hw: Hardware, layout: RunLayout) -> dict[str, tuple[float, str]]:
    """Each figure of the module docstring that applies to ``layout``: name -> (GiB per GPU, phase)."""
    sharded = layout.strategy == "fsdp"
    shards = layout.processes if sharded else 1
    weight, compute = BYTES[layout.weight_dtype], BYTES[layout.compute_dtype]
    tokens = work.micro_batch_token_count
    layer_working_set = tokens * (8 * shape.hidden + 3 * shape.intermediate) * compute
    if work.gradient_checkpointing:
        activations = shape.layers * tokens * shape.hidden * compute + layer_working_set
    else:
        activations = shape.layers * layer_working_set
    figures = {
        f"weights ({layout.weight_dtype})": (weight * shape.params / shards, HELD),
        f"gradients ({layout.weight_dtype})": (weight * shape.params / shards, HELD),
        f"optimiser (AdamW, {layout.weight_dtype})": (2 * weight * shape.params / shards, HELD),
        "activations (micro-batch)": (activations, UPDATE),
        "logits (micro-batch)": ((compute + 4) * tokens * shape.vocab, UPDATE),
    }
    if sharded:
        figures["gathered layers"] = (2 * compute * shape.layer_params, UPDATE)
        figures["FSDP root unit (embeddings, head)"] = (compute * shape.root_params, UPDATE)
    sequence_tokens = work.prompt_tokens + work.response_tokens
    if layout.rollout == "vllm-colocate":
        figures[f"vLLM ({layout.vllm_memory_share:g} of the GPU)"] = (
            layout.vllm_memory_share * hw.gpu_memory_gib * GIB, HELD if layout.vllm_held_in_update else ROLLOUTS)
    elif layout.rollout == "hf":
        figures["KV cache (HF generation)"] = (hw.concurrent_sequences * sequence_tokens * shape.kv_bytes_per_token(compute),
                                               ROLLOUTS)
    if sharded and layout.rollout == "hf":
        figures[f"generation copy ({layout.compute_dtype})"] = (compute * shape.params, HELD)
        figures["E-step refresh (gathered state)"] = (weight * shape.params, ROLLOUTS)
    elif sharded and layout.rollout.startswith("vllm"):
        figures["weight sync (one gathered tensor)"] = (weight * shape.largest_tensor, ROLLOUTS)
    return {name: (value / GIB, phase) for name, (value, phase) in figures.items()}


def seconds_per_iteration(shape: ModelShape, work: Workload, hw: Hardware, layout: RunLayout, rollout_tokens_per_s: float | None,
                          mfu: float, response_fill: float) -> tuple[dict[str, float], list[str]]:
    assumptions = [f"responses fill {response_fill:.0%} of the {work.response_tokens}-token budget on average",
                   f"M-step MFU {mfu:.0%} of {PEAK_FLOPS[hw.accelerator] / 1e12:.0f} TFLOP/s bf16 peak ({hw.accelerator})"]
    if rollout_tokens_per_s is None:
        rollout_tokens_per_s = next(rate for limit, rate in ASSUMED_DECODE_TOKENS_PER_S if shape.params <= limit)
        slower = "; the hf backend decodes slower" if layout.rollout == "hf" else ""
        assumptions.append(f"decode {rollout_tokens_per_s:,.0f} tokens/s per GPU (vLLM's, assumed for this size; not measured "
                           f"here{slower})")
    else:
        assumptions.append(f"decode {rollout_tokens_per_s:,.0f} tokens/s per GPU (given)")
    if layout.rollout == "vllm-server":
        assumptions.append(f"the vLLM server decodes on {layout.processes} GPUs of its own, as many as the trainer's (the "
                           f"rollouts line scales with {layout.processes} / its GPUs)")
    response = work.response_tokens * response_fill
    generated = work.rollouts * response
    trained_tokens = work.train_sequences * (work.prompt_tokens + response)
    flops_per_token = (6 + (2 if work.gradient_checkpointing else 0) + 2) * shape.params
    return {
        "rollouts": generated / (rollout_tokens_per_s * layout.processes),
        "update": trained_tokens * flops_per_token / (layout.processes * PEAK_FLOPS[hw.accelerator] * mfu),
    }, assumptions


def vllm_room(shape: ModelShape, work: Workload, hw: Hardware, layout: RunLayout) -> str:
    """What a colocated engine's share holds beyond its weights, in whole sequences; ValueError when the share
    cannot hold the weights (in the engine's dtype)."""
    share = layout.vllm_memory_share * hw.gpu_memory_gib * GIB
    engine_bytes = BYTES[layout.vllm_dtype]
    weights = engine_bytes * shape.params / layout.vllm_tensor_parallel
    if weights >= share:
        raise ValueError(f"vLLM's share ({layout.vllm_memory_share:g} x {hw.gpu_memory_gib:g} GiB = {share / GIB:.1f} GiB) cannot "
                         f"hold its {weights / GIB:.1f} GiB of weights: raise vllm_gpu_memory_utilization")
    per_sequence = shape.kv_bytes_per_token(engine_bytes) / layout.vllm_tensor_parallel * (work.prompt_tokens + work.response_tokens)
    return (f"vLLM's share holds {weights / GIB:.1f} GiB of weights and KV cache for about "
            f"{int((share - weights) // per_sequence)} sequences at once (activations not counted)")


def make_plan(shape: ModelShape, work: Workload, hw: Hardware, layout: RunLayout, rollout_tokens_per_s: float | None = None,
              mfu: float = 0.4, response_fill: float = 0.5) -> Plan:
    seconds, assumptions = seconds_per_iteration(shape, work, hw, layout, rollout_tokens_per_s, mfu, response_fill)
    if layout.rollout == "vllm-colocate":
        assumptions.append(vllm_room(shape, work, hw, layout))
    return Plan(memory_per_gpu(shape, work, hw, layout), seconds, assumptions)


def workload_from_config(config, prompt_tokens: int) -> Workload:
    """An EM iteration (``EMConfig``) or an RL step (``RLConfig``) as rollouts and trained sequences."""
    if config.COMMAND == "train-em":
        rollouts = config.queries_per_iteration * (2 * config.k + config.free_rollouts)
        train_sequences = config.queries_per_iteration * config.samples_per_query
    else:
        rollouts = train_sequences = config.prompts_per_step * config.group_size
        train_sequences *= config.updates_per_batch
    return Workload(rollouts=rollouts, response_tokens=config.max_tokens, prompt_tokens=prompt_tokens,
                    train_sequences=train_sequences, micro_batch_size=config.micro_batch_size,
                    gradient_checkpointing=config.gradient_checkpointing,
                    micro_batch_tokens=getattr(config, "micro_batch_tokens", 0))


def render(plan: Plan, shape: ModelShape, hw: Hardware, layout: RunLayout) -> str:
    unit = "EM iteration" if layout.trainer == "train-em" else "RL step"
    lines = [f"{layout.trainer}, model {shape.name}: {shape.params / 1e9:.2f}B parameters; {layout.processes} x "
             f"{hw.accelerator} ({hw.gpu_memory_gib:g} GiB), {layout.strategy}, rollouts {layout.rollout}, compute "
             f"{layout.compute_dtype}, weights {layout.weight_dtype}", "",
             f"{'memory per GPU':<40} {'GiB':>8}  held"]
    lines += [f"  {name:<38} {value:8.2f}  {phase}" for name, (value, phase) in plan.memory.items()]
    lines += [f"  {'peak (held + the larger phase)':<38} {plan.peak_gib:8.2f}", "", f"time per {unit}"]
    lines += [f"  {name:<38} {value / 60:8.1f} min" for name, value in plan.seconds.items()]
    lines += [f"  {'total':<38} {sum(plan.seconds.values()) / 60:8.1f} min", "", "assumptions:"]
    lines += [f"  - {text}" for text in plan.assumptions]
    return "\n".join(lines)


def trainer_config(trainer: str | None, preset: str | None, config_file: Path | None, settings: list[str]):
    """The config ``harness <trainer>`` would run with, through the trainers' own TrainerConfig.resolve:
    preset, YAML file, the ``--set`` fields as its flags (YAML values), then a rehearsal's
    HARNESS_OVERRIDES; ValueError(one line) for what it refuses."""
    from dataclasses import fields

    import yaml

    from harness.em.config import EMConfig
    from harness.rl.config import RLConfig

    trainers = {cls.COMMAND: cls for cls in (EMConfig, RLConfig)}
    if trainer is None:
        having = [name for name, cls in trainers.items() if preset in cls.PRESETS]
        if len(having) != 1:
            named = ("no preset says which trainer" if preset is None else f"unknown preset {preset!r}" if not having
                     else f"preset {preset!r} is both train-em's and train-rl's")
            raise ValueError(f"{named}: name the trainer with --trainer train-em or train-rl (train-em has "
                             f"{', '.join(EMConfig.PRESETS)}; train-rl has {', '.join(RLConfig.PRESETS)})")
        trainer = having[0]
    if trainer not in trainers:
        raise ValueError(f"--trainer: must be train-em or train-rl (got {trainer!r})")
    config_class, values = trainers[trainer], {}
    for setting in settings:
        name, equals, text = setting.partition("=")
        if not equals:
            raise ValueError(f"--set {setting}: give FIELD=VALUE")
        values[name.strip()] = yaml.safe_load(text)
    unknown = sorted(set(values) - {spec.name for spec in fields(config_class)})
    if unknown:
        raise ValueError(f"--set: {trainer} has no field {unknown[0]!r} (see `harness {trainer} --help-config`)")
    return config_class.resolve(preset, config_file, **values)


def generation_batch(config, processes: int) -> int:
    """Sequences each process generates at once on the hf path: an E-step round (train-em), or the rows TRL
    hands this process's rollout function per generation (train-rl)."""
    if config.COMMAND == "train-em":
        from harness.em.trainer import ESTEP_ROUND

        return ESTEP_ROUND
    return config.batch_rows(processes)[0] * config.steps_per_generation


def plan_command(
    preset: Annotated[str | None, typer.Option(help="a train-em preset (e.g. paper-7b) or a train-rl preset (e.g. qwen2.5-7b)")] = None,
    trainer: Annotated[str | None, typer.Option(help="train-em or train-rl; needed when the preset does not say (tiny is both)")] = None,
    config_file: Annotated[Path | None, typer.Option("--config", help="YAML file of the trainer's config fields, over the preset")] = None,
    settings: Annotated[list[str] | None, typer.Option("--set", help="FIELD=VALUE (YAML) over the preset and --config; repeatable")] = None,
    gpus: Annotated[int, typer.Option(min=1, help="GPUs the run will use, one process each")] = 8,
    gpu_memory: Annotated[float, typer.Option(min=1, help="GiB of memory per GPU")] = 80.0,
    shape: Annotated[str, typer.Option(help=f"model shape: {', '.join(SHAPES)}, or a folder/config.json")] = "qwen2.5-7b",
    accelerator: Annotated[str, typer.Option(help=f"for the FLOP/s peak: {', '.join(PEAK_FLOPS)}")] = "h100",
    strategy: Annotated[str, typer.Option(help="the launch config's: fsdp (full shard) or ddp (replicated states)")] = "fsdp",
    concurrent_sequences: Annotated[int | None, typer.Option(
        min=1, help="sequences each process generates at once on the hf backend (KV cache); default: the trainer's")] = None,
    prompt_tokens: Annotated[int, typer.Option(min=0, help="mean prompt length in tokens")] = 256,
    rollout_tokens_per_s: Annotated[float | None, typer.Option(help="measured decode tokens/s per GPU")] = None,
    mfu: Annotated[float, typer.Option(min=0.01, max=1.0, help="M-step model FLOP utilisation")] = 0.4,
    response_fill: Annotated[float, typer.Option(min=0.01, max=1.0, help="mean response length / budget")] = 0.5,
) -> None:
    """Per-GPU memory and time per EM iteration (or RL step) of a trainer config, laid out as the trainer lays it
    out; refuses what the trainer refuses (exit 2) and exits 1 when it does not fit."""
    from harness.io import fail
    from harness.training.layout import run_layout, strategy_for

    if preset is None and config_file is None:
        fail("give --preset, --config or both (with --trainer when the preset does not name it)")
    if accelerator not in PEAK_FLOPS:
        fail(f"unknown accelerator {accelerator!r}; choose one of {', '.join(PEAK_FLOPS)}")
    if strategy not in ("fsdp", "ddp"):
        fail(f"unknown strategy {strategy!r}; choose fsdp or ddp")
    try:
        config = trainer_config(trainer, preset, config_file, settings or [])
        layout = run_layout(config, strategy_for(strategy == "fsdp", gpus), gpus, gpu=True)
        model = model_shape(shape)
        hw = Hardware(gpu_memory, concurrent_sequences or generation_batch(config, gpus), accelerator)
        plan = make_plan(model, workload_from_config(config, prompt_tokens), hw, layout, rollout_tokens_per_s, mfu,
                         response_fill)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    typer.echo(render(plan, model, hw, layout))
    if plan.peak_gib > gpu_memory:
        typer.echo(f"error: the plan needs {plan.peak_gib:.1f} GiB per GPU, more than the {gpu_memory:g} GiB there: use more "
                   "GPUs (or FSDP), a smaller micro-batch, or less for the rollouts (vllm_gpu_memory_utilization, "
                   "--concurrent-sequences)", err=True)
        raise typer.Exit(1)
