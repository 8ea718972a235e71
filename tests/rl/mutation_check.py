"""Apply each mutation to the trainers' source, run the fast tests, print which tests caught it, revert.

    python -m tests.rl.mutation_check [INDEX ...]      # from the repository root; ~40 min on 2 busy cores

Every mutation must be caught by at least one test (docs/em.md has the table). The source
file is restored in a ``finally`` even when the run is interrupted. The signal mutations (``MUTATIONS``)
run the whole fast set ``TESTS``; the wiring mutations (``WIRING_MUTATIONS``, issue 21: what a trainer passes
into the tested functions) run only the tests written to catch them, since each of those runs a trainer
end to end (tens of seconds) and the rest of the fast set was shown to let them through.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
TESTS = ["tests/rl/test_grpo_signal.py", "tests/rl/test_mutations.py", "tests/rl/test_fidelity.py", "tests/training/test_losses.py",
         "tests/rl/test_em_steps.py", "tests/training/test_policy.py"]
MUTATIONS = [
    ("RL reward negated: the advantages TRL computes flip (rollouts.Reward)", "harness/rl/rollouts.py",
     "rewards = [float(bool(g.correct))", "rewards = [-float(bool(g.correct))"),
    ("EM policy-gradient sign flipped (losses.truncated_is_loss)", "harness/training/losses.py",
     "per_token = -logprobs * weight", "per_token = logprobs * weight"),
    ("M-step loss zeroed (objective.mstep_loss)", "harness/em/objective.py",
     "return policy + (weights * kl).mean(), {", "return 0 * (policy + (weights * kl).mean()), {"),
    ("decision CE zeroed (objective.decision_cross_entropy)", "harness/em/objective.py",
     "return -(target * torch.log_softmax(prefix_logprobs, dim=-1)).sum(-1).mean()",
     "return 0 * -(target * torch.log_softmax(prefix_logprobs, dim=-1)).sum(-1).mean()"),
    ("decision CE never reaches the model (MStep._decision_loss)", "harness/em/mstep.py",
     "stacked = torch.stack([logprobs[q] for q in queries])",
     "stacked = torch.stack([logprobs[q] for q in queries]).detach().requires_grad_()"),
    ("tool tokens let through the EM mask (batch.build_batch)", "harness/training/batch.py",
     "= torch.tensor(loss_mask, dtype=torch.float32)", "= 1.0"),
    ("RL env_mask not handed to TRL (rollouts.RolloutFunc)", "harness/rl/rollouts.py",
     '"env_mask": [t.loss_mask for t in trajectories], ', ""),
    ("RL tool tokens unmasked: env_mask all ones (rollouts.RolloutFunc)", "harness/rl/rollouts.py",
     '"env_mask": [t.loss_mask for t in trajectories]', '"env_mask": [[1] * len(t.loss_mask) for t in trajectories]'),
    ("tool tokens let through the EM mask (MStep.batch)", "harness/em/mstep.py",
     'loss_mask(r)[r["forced_tokens"]:] for r in rollouts]', '[1] * (len(loss_mask(r)) - r["forced_tokens"]) for r in rollouts]'),
    ("forced prefix trained as sampled (MStep.batch)", "harness/em/mstep.py",
     'masks = [[0] * r["forced_tokens"] +', 'masks = [loss_mask(r)[: r["forced_tokens"]] +'),
    ("IS cap ignored (losses.truncated_is_loss)", "harness/training/losses.py",
     "weight = torch.clamp(torch.exp(logprobs - old_logprobs), max=cap).detach()",
     "weight = torch.exp(logprobs - old_logprobs).detach()"),
    ("IS cap not passed by the EM trainer", "harness/em/mstep.py",
     "rho_cap=config.rho_cap", "rho_cap=math.inf"),
    ("EM pi_old misaligned by one token (MStep._pi_old)", "harness/em/mstep.py",
     'logprobs[row, : len(r["prompt_ids"]) + len(response_ids(r)) - 1]',
     'logprobs[row, 1 : len(r["prompt_ids"]) + len(response_ids(r))]'),
    ("resume restores the optimiser state into a throwaway optimiser (MStep.run)", "harness/em/mstep.py",
     "load_trainer_state(latest_checkpoint(self.out), optimizer, scheduler,",
     "load_trainer_state(latest_checkpoint(self.out), torch.optim.AdamW(self.model.parameters()), scheduler,"),
    ("EM micro-batch not weighted by its share of the step (MStep._sample_loss)", "harness/em/mstep.py",
     "return loss * len(items) / step_size", "return loss"),
    ("SFT micro-batch loss averaged on its own tokens (sft.sft_step)", "harness/training/sft.py",
     'token_loss(logits, batch["labels"].to(device), normaliser)', 'token_loss(logits, batch["labels"].to(device))'),
    ("RL steps_per_generation ignored: always on-policy (trainer.grpo_arguments)", "harness/rl/trainer.py",
     "steps_per_generation=accumulation * config.steps_per_generation", "steps_per_generation=accumulation"),
    ("RL rows of a group share a seed (rollouts.RolloutFunc)", "harness/rl/rollouts.py",
     "trainer.state.global_step, first + i)", "trainer.state.global_step, first)"),
]

WIRING = "tests/rl/test_wiring.py::"
EM_RUN_GOLD = WIRING + "test_em_estep_grades_each_rollout_against_its_own_gold"
EM_PI_OLD = WIRING + "test_em_each_iteration_uses_its_own_pi_old"
EM_SETTINGS = WIRING + "test_em_rollout_settings_reach_the_engine_and_the_sampler"
EM_SCHEDULE = WIRING + "test_em_learning_rate_schedule_is_the_one_the_optimiser_steps_with"
RL_GOLD_SCHEDULE = WIRING + "test_rl_rewards_grade_each_row_against_its_own_gold_and_the_schedule_is_stepped"
RL_SETTINGS = WIRING + "test_rl_rollout_settings_reach_the_engine_and_the_sampler"
GRADIENTS = "tests/training/test_distributed_sft_em.py::test_two_processes_hand_the_optimiser_the_one_process_gradient"
STDERR = "tests/eval/test_metrics.py::test_avg_stderr_is_over_problems_not_over_attempts"
WIRING_MUTATIONS = [
    # 1. the gold a rollout is graded against
    ("EM E-step grades against the next query's gold (trainer._attempts)", "harness/em/trainer.py",
     "plan.append(Attempt(self.samples[i], ",
     "plan.append(Attempt(__import__(\"dataclasses\").replace(self.samples[i], answer=self.samples[(i + 1) % len(self.samples)].answer), ",
     [EM_RUN_GOLD]),
    ("RL reward grades each row against the next row's gold (rollouts.Reward)", "harness/rl/rollouts.py",
     "zip(response_text, answer)", "zip(response_text, answer[1:] + answer[:1])", [RL_GOLD_SCHEDULE]),
    ("RL dataset pairs each question with the previous one's gold (trainer.dataset)", "harness/rl/trainer.py",
     '"answer": json.dumps(s.answer)', '"answer": json.dumps(self.samples[self.samples.index(s) - 1].answer)', [RL_GOLD_SCHEDULE]),
    # 2. π_old per iteration
    ("EM every iteration reads iteration 0's pi_old (MStep._pi_old)", "harness/em/mstep.py",
     'iteration_folder(self.out, iteration) / "pi_old.pt"', 'iteration_folder(self.out, 0) / "pi_old.pt"', [EM_PI_OLD]),
    # 3. the learning-rate schedule the trainer steps
    ("EM warm-up dropped from the M-step schedule (MStep.run)", "harness/em/mstep.py",
     "lambda s: lr_factor(s, steps, warmup, config.lr_schedule)", "lambda s: lr_factor(s, steps, 0, config.lr_schedule)", [EM_SCHEDULE]),
    ("EM lr_schedule ignored: always constant (MStep.run)", "harness/em/mstep.py",
     "lambda s: lr_factor(s, steps, warmup, config.lr_schedule)", 'lambda s: lr_factor(s, steps, warmup, "constant")', [EM_SCHEDULE]),
    ("EM scheduler never stepped (MStep.run)", "harness/em/mstep.py", "scheduler.step()", "pass", [EM_SCHEDULE]),
    ("RL warm-up dropped from the schedule (grpo.create_scheduler)", "harness/rl/grpo.py",
     "lambda step: lr_factor(step, config.steps, config.warmup_steps, config.lr_schedule)",
     "lambda step: lr_factor(step, config.steps, 0, config.lr_schedule)", [RL_GOLD_SCHEDULE]),
    ("RL our schedule not installed: TRL's default linear decay (grpo.create_scheduler)", "harness/rl/grpo.py",
     "def create_scheduler(", "def _create_scheduler_unused(", [RL_GOLD_SCHEDULE]),
    # 4. config fields that reach the engine and the sampler
    ("EM max_tool_calls not passed to the engine (trainer.estep)", "harness/em/trainer.py",
     "max_tool_calls=config.max_tool_calls", "max_tool_calls=4", [EM_SETTINGS]),
    ("EM max_tokens not passed to the engine (trainer.estep)", "harness/em/trainer.py",
     "max_tokens=config.max_tokens)", "max_tokens=2000)", [EM_SETTINGS]),
    ("EM top_p not passed to the sampler (trainer.estep)", "harness/em/trainer.py", "top_p=config.top_p", "top_p=0.95", [EM_SETTINGS]),
    ("EM sandbox_timeout not passed to the sandbox (trainer.train)", "harness/em/trainer.py",
     "SandboxLimits(timeout_s=self.config.sandbox_timeout)", "SandboxLimits()", [EM_SETTINGS]),
    ("EM rollout seeds repeat from iteration to iteration (trainer._attempts)", "harness/em/trainer.py",
     "mix_seed(config.seed, iteration, i, ", "mix_seed(config.seed, i, ", [EM_SETTINGS]),
    ("RL max_tool_calls not passed to the engine (rollouts.RolloutFunc)", "harness/rl/rollouts.py",
     "max_tool_calls=config.max_tool_calls", "max_tool_calls=2", [RL_SETTINGS]),
    ("RL temperature not passed to the sampler (rollouts.RolloutFunc)", "harness/rl/rollouts.py",
     "temperature=config.temperature", "temperature=1.0", [RL_SETTINGS]),
    ("RL sandbox_timeout not passed to the sandbox (trainer.train)", "harness/rl/trainer.py",
     "SandboxLimits(timeout_s=config.sandbox_timeout)", "SandboxLimits()", [RL_SETTINGS]),
    ("RL rollout seeds repeat from step to step (rollouts.RolloutFunc)", "harness/rl/rollouts.py",
     "mix_seed(config.seed, trainer.state.global_step, first + i)", "mix_seed(config.seed, first + i)", [RL_SETTINGS]),
    # 5. statistics over the right unit
    ("avg@n standard error over pooled attempts, not problems (metrics.accuracy_metrics)", "harness/eval/metrics.py",
     "mean_and_stderr([mean(p) for p in per_problem])", "mean_and_stderr([float(x) for p in per_problem for x in p])", [STDERR]),
    # 6. gradient scaling across processes
    ("EM loss not scaled by the process count: DDP's average halves the gradient (MStep.optimiser_step)",
     "harness/em/mstep.py", "accelerator.backward(loss * weight * world)", "accelerator.backward(loss * weight)", [GRADIENTS]),
    ("SFT loss not scaled by the process count (sft.sft_step)", "harness/training/sft.py",
     "accelerator.backward(loss * world)", "accelerator.backward(loss)", [GRADIENTS]),
]


def main(only: list[str]) -> int:
    missed = 0
    for index, (name, path, old, new, *tests) in enumerate(MUTATIONS + WIRING_MUTATIONS):
        if only and str(index) not in only:
            continue
        caught = run_mutated(name, path, old, new, tests[0] if tests else TESTS)
        missed += not caught
        print(json.dumps({"mutation": name, "caught_by": caught}), flush=True)
    return 1 if missed else 0


def run_mutated(name: str, path: str, old: str, new: str, tests: list[str]) -> list[str]:
    full = Path(ROOT) / path
    source = full.read_text()
    if source.count(old) != 1:
        raise SystemExit(f"error: mutation {name!r} no longer matches {path} once")
    full.write_text(source.replace(old, new))
    try:
        run = subprocess.run(["timeout", "600", sys.executable, "-m", "pytest", *tests, "-q", "-p", "no:cacheprovider", "-rfE"],
                             cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True, text=True)
    finally:
        full.write_text(source)
    # A test whose fixture crashed on the mutated trainer (ERROR) caught it as surely as a failed assertion.
    return sorted({line.split()[1].split("::")[-1] for line in run.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
