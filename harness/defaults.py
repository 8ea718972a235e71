"""The rollout limits evaluation and the trainers share, in one place, with why they differ where they do.

``harness eval``, ``train-rl`` and ``train-em`` once declared these three times with defaults that
disagreed (4/2/4 code cells, 10/5/5 seconds); every declaration now reads its default from here.
"""

# Executed code cells per rollout, the same for evaluation and training: a policy is trained under the
# budget it is then evaluated with (train-rl's default was 2, so its policies met a budget at eval they
# had never seen).
MAX_TOOL_CALLS = 4

# Seconds per code cell. They differ on purpose. An evaluation waits longer: a cell that times out fails
# a problem the model may have solved, and a benchmark is run once. Training runs hundreds of cells per
# step in lockstep, so one stuck cell holds up the whole step, over and over; a slower cell costs the
# policy one reward there, and the testbed's cells take milliseconds.
EVAL_SANDBOX_TIMEOUT_S = 10.0
TRAIN_SANDBOX_TIMEOUT_S = 5.0
