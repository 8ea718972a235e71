"""Training pieces shared by the SFT, RL and EM trainers: sequences with loss masks, checkpoints, the SFT loop."""
