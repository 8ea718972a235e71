"""Reinforcement learning: the loss functions shared by `train-rl` and the EM trainer's M-step."""
