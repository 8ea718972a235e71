"""The `harness` command line. Heavy libraries are imported inside commands so `--help` stays instant."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="harness",
    help="Evaluate math language models with and without code, and train them to decide when to write code.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _main() -> None:
    """harness: math evaluation with tool-integrated reasoning, and adaptive tool-use training."""


def _register_subcommands() -> None:
    from harness.em.cli import train_em_command
    from harness.eval.cli import eval_command, score_command, tasks_command
    from harness.grading.cli import grade
    from harness.leaderboard.cli import leaderboard_command
    from harness.plan import plan_command
    from harness.rl.cli import train_rl_command
    from harness.sandbox.cli import sandbox_app
    from harness.testbed.cli import model_app, testbed_app
    from harness.training.cli import train_sft_command

    app.command(name="eval")(eval_command)
    app.command(name="score")(score_command)
    app.command(name="tasks")(tasks_command)
    app.command(name="grade")(grade)
    app.command(name="leaderboard")(leaderboard_command)
    app.add_typer(sandbox_app, name="sandbox")
    app.command(name="train-rl")(train_rl_command)
    app.command(name="train-em")(train_em_command)
    app.add_typer(model_app, name="model")
    app.add_typer(testbed_app, name="testbed")
    app.command(name="train-sft")(train_sft_command)
    app.command(name="plan")(plan_command)


_register_subcommands()
