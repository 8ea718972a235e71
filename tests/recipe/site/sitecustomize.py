"""Read at start-up by every Python process of the recipe test (this folder is first on its PYTHONPATH). In the
processes `accelerate launch` starts (RANK set), HARNESS_TEST_SHARDING=fsdp2 installs the FSDP2-on-CPU shim
(tests/sharding_on_cpu.py), which the documented commands get on GPUs from the launch config itself."""

import os

if "RANK" in os.environ:
    from tests.sharding_on_cpu import install_if_asked

    install_if_asked()
