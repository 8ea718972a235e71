"""Apply each mutation to the trainers' source, run the fast tests, print which tests caught it, revert.

    python -m tests.rl.mutation_check [INDEX ...]      # from the repository root; ~10 min on 2 cores

Every mutation must be caught by at least one test (the README's EM section has the table). The source
file is restored in a ``finally`` even when the run is interrupted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
TESTS = ["tests/rl/test_grpo_signal.py", "tests/rl/test_mutations.py", "tests/rl/test_fidelity.py", "tests/rl/test_losses.py",
         "tests/rl/test_em_steps.py", "tests/training/test_policy.py"]
MUTATIONS = [
    ("RL reward negated: the advantages TRL computes flip (rollouts.Reward)", "harness/rl/rollouts.py",
     "rewards = [float(bool(g.correct))", "rewards = [-float(bool(g.correct))"),
    ("EM policy-gradient sign flipped (losses.truncated_is_loss)", "harness/rl/losses.py",
     "per_token = -logprobs * weight", "per_token = logprobs * weight"),
    ("M-step loss zeroed (mstep.mstep_loss)", "harness/em/mstep.py",
     "return policy + (weights * kl).mean(), {", "return 0 * (policy + (weights * kl).mean()), {"),
    ("decision CE zeroed (mstep.decision_cross_entropy)", "harness/em/mstep.py",
     "return -(target * torch.log_softmax(prefix_logprobs, dim=-1)).sum(-1).mean()",
     "return 0 * -(target * torch.log_softmax(prefix_logprobs, dim=-1)).sum(-1).mean()"),
    ("decision CE never reaches the model (EM update._decision_loss)", "harness/em/update.py",
     "stacked = torch.stack([logprobs[q] for q in queries])", "stacked = torch.stack([logprobs[q] for q in queries]).detach().requires_grad_()"),
    ("tool tokens let through the EM mask (batch.build_batch)", "harness/rl/batch.py",
     "= torch.tensor(loss_mask, dtype=torch.float32)", "= 1.0"),
    ("RL env_mask not handed to TRL (rollouts.Rollouts)", "harness/rl/rollouts.py",
     '"env_mask": [t.loss_mask for t in trajectories], ', ""),
    ("RL tool tokens unmasked: env_mask all ones (rollouts.Rollouts)", "harness/rl/rollouts.py",
     '"env_mask": [t.loss_mask for t in trajectories]', '"env_mask": [[1] * len(t.loss_mask) for t in trajectories]'),
    ("tool tokens let through the EM mask (EMTrainer._batch)", "harness/em/update.py",
     'r["loss_mask"][r["forced_tokens"]:] for r in rollouts]', '[1] * (len(r["loss_mask"]) - r["forced_tokens"]) for r in rollouts]'),
    ("forced prefix trained as sampled (EMTrainer._batch)", "harness/em/update.py",
     'masks = [[0] * r["forced_tokens"] +', 'masks = [r["loss_mask"][: r["forced_tokens"]] +'),
    ("IS cap ignored (losses.truncated_is_loss)", "harness/rl/losses.py",
     "weight = torch.clamp(torch.exp(logprobs - old_logprobs), max=cap).detach()",
     "weight = torch.exp(logprobs - old_logprobs).detach()"),
    ("IS cap not passed by the EM trainer", "harness/em/update.py",
     "rho_cap=config.rho_cap", "rho_cap=math.inf"),
    ("EM pi_old misaligned by one token (EMTrainer._pi_old)", "harness/em/update.py",
     'logprobs[row, : len(r["prompt_ids"]) + len(r["response_ids"]) - 1]',
     'logprobs[row, 1 : len(r["prompt_ids"]) + len(r["response_ids"])]'),
    ("resume restores the optimiser state into a throwaway optimiser (EM mstep)", "harness/em/update.py",
     "load_trainer_state(latest_checkpoint(self.out), optimizer, scheduler,",
     "load_trainer_state(latest_checkpoint(self.out), torch.optim.AdamW(self.model.parameters()), scheduler,"),
    ("EM micro-batch not weighted by its share of the step (update._sample_loss)", "harness/em/update.py",
     "return loss * len(items) / step_size", "return loss"),
    ("SFT micro-batch loss averaged on its own tokens (sft.sft_step)", "harness/training/sft.py",
     'token_loss(logits, batch["labels"].to(device), normaliser)', 'token_loss(logits, batch["labels"].to(device))'),
    ("RL steps_per_generation ignored: always on-policy (trainer.grpo_arguments)", "harness/rl/trainer.py",
     "steps_per_generation=accumulation * config.steps_per_generation", "steps_per_generation=accumulation"),
    ("RL rows of a group share a seed (rollouts.Rollouts)", "harness/rl/rollouts.py",
     "trainer.state.global_step, first + i)", "trainer.state.global_step, first)"),
]


def main(only: list[str]) -> int:
    missed = 0
    for index, (name, path, old, new) in enumerate(MUTATIONS):
        if only and str(index) not in only:
            continue
        caught = run_mutated(name, path, old, new)
        missed += not caught
        print(json.dumps({"mutation": name, "caught_by": caught}), flush=True)
    return 1 if missed else 0


def run_mutated(name: str, path: str, old: str, new: str) -> list[str]:
    full = Path(ROOT) / path
    source = full.read_text()
    if source.count(old) != 1:
        raise SystemExit(f"error: mutation {name!r} no longer matches {path} once")
    full.write_text(source.replace(old, new))
    try:
        run = subprocess.run(["timeout", "600", sys.executable, "-m", "pytest", *TESTS, "-q", "-p", "no:cacheprovider", "-rf"],
                             cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True, text=True)
    finally:
        full.write_text(source)
    return sorted({line.split()[1].split("::")[1] for line in run.stdout.splitlines() if line.startswith("FAILED")})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
