"""An unsharded copy of a sharded policy, for generating in the trainer's own processes without vLLM.

Under FSDP every forward of the sharded model gathers each layer from every process, so all processes must
run the same number of forwards. Rollouts do not: answers end at different lengths and take different
numbers of tool rounds per process, and the first process to finish would leave the others waiting in a
gather forever. So each process generates with a whole copy of its own in the compute dtype (bf16 on a GPU:
a 7B copy is ~15 GB beside the shards), refreshed from the gathered weights (one collective every process
joins at the same point) before each round of rollouts. vLLM, when it runs, replaces this copy.
"""

from __future__ import annotations


class GenerationCopy:
    def __init__(self, model_config, dtype, device) -> None:
        from transformers import AutoModelForCausalLM

        self.model = AutoModelForCausalLM.from_config(model_config, dtype=dtype).to(device).eval()

    def refresh(self, accelerator, sharded_model) -> None:
        """Load the current weights (a collective under FSDP: every process calls it at the same point)."""
        from harness.training.checkpoint import load_whole
        from harness.training.distributed import full_weights

        load_whole(self.model, full_weights(accelerator, sharded_model), "the gathered weights (generation copy)")
