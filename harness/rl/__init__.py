"""Reinforcement learning: `train-rl` on TRL (config, trainer, rollouts, vLLM adapters) and the loss pieces and batches
the EM trainer uses."""
