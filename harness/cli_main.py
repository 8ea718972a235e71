"""``python -m harness.cli_main``: the CLI without the console script (tests and subprocesses use it)."""

from harness.cli import app

if __name__ == "__main__":
    app()
