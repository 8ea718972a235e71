"""The arena: its board's arithmetic on hand-made points (means that skip undefined metrics, the Pareto
front, the generated reading, the plot), its plan (the miniature's rows plus one SFT+RL row per strategy,
all at one budget), its command-line errors, and a 1-seed tiny-budget smoke of the real command."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from harness.testbed.arena import ROW_NAMES, parse_strategies
from harness.testbed.arena_report import markdown, pareto_front, plot, reading, summarise
from harness.testbed.miniature import plan

KINDS = ["cot-sufficient", "code-necessary", "code-unhelpful"]


def point(correct: list[bool], calls: list[int], failed_cells: int = 0, ignored_rate=None) -> dict:
    """An evaluation of the three KINDS problems; efficiency as harness.eval.efficiency would give it."""
    cells = sum(calls)
    return {"correct": correct, "used_code": [c > 0 for c in calls], "tool_calls": calls,
            "oracle": {"cot": [True, False, True], "code": [True, True, False]},
            "efficiency": {"tool_error_rate_cell": failed_cells / cells if cells else None,
                           "tool_productivity": sum(correct) / cells if cells else None,
                           "model_tokens_per_correct": 30.0 * len(correct) / sum(correct) if any(correct) else None,
                           "tool_ignored_rate": ignored_rate, "tool_followed_wrongly_rate": None}}


def hand_made() -> dict:
    start = point([True, False, True], [0, 0, 0])
    runs = [{"row": "SFT+RL", "seed": seed, "curve": [[0, start], [64, point(correct, [0, 1, 0], ignored_rate=rate)]]}
            for seed, (correct, rate) in enumerate([([True, True, True], 0.0), ([True, True, False], None)])]
    runs += [{"row": "RL+OTC", "seed": seed, "curve": [[0, start], [64, point([True, False, True], [0, 0, 0])]]} for seed in (0, 1)]
    runs += [{"row": "EM (q_argmax)", "seed": seed, "curve": [[0, start], [64, point([True, True, False], [1, 1, 1], failed_cells=1)]]}
             for seed in (0, 1)]
    return {"kinds": KINDS, "starts": {"SFT only": start}, "runs": runs}


def test_final_budget_means_skip_a_metric_a_seed_leaves_undefined():
    summary = summarise(hand_made())
    rl = summary["SFT+RL"]
    assert (rl["rollouts"], rl["seeds"]) == (64, 2)
    assert rl["metrics"]["acc/all"].mean == pytest.approx(5 / 6) and rl["metrics"]["acc/all"].n == 2
    assert rl["metrics"]["calls"].mean == pytest.approx(1 / 3)
    assert rl["metrics"]["tool_productivity"].mean == pytest.approx((3 + 2) / 2)
    ignored = rl["metrics"]["tool_ignored_rate"]  # seed 1 printed no gold: undefined, left out
    assert (ignored.mean, ignored.n) == (0.0, 1)
    assert summary["RL+OTC"]["metrics"]["tool_productivity"] is None  # no seed ran a cell
    assert summary["EM (q_argmax)"]["metrics"]["tool_error_rate_cell"].mean == pytest.approx(1 / 3)
    assert summary["SFT only"]["seeds"] == 1 and summary["SFT only"]["rollouts"] == 0
    table = markdown(summary, "# arena")
    assert "| SFT+RL | 2 | 64 | 83 ± " in table and "0 (n=1)" in table
    assert table.count("\n| ") == 1 + len(summary)  # the header and one line per row


def test_pareto_front_and_the_generated_reading():
    summary = summarise(hand_made())
    # SFT+RL (83%, 0.33 calls) beats EM (67%, 1 call); SFT only and RL+OTC tie (67%, 0 calls): neither dominates the other.
    assert pareto_front(summary) == ["SFT only", "RL+OTC", "SFT+RL"]
    text = reading(summary)
    assert text.startswith("best accuracy: SFT+RL")
    assert "fewest tool calls per problem: SFT only" in text
    assert text.endswith("Pareto front (accuracy against tool calls per problem): SFT only, RL+OTC, SFT+RL.")


def test_the_pareto_plot_is_written(tmp_path):
    plot(summarise(hand_made()), tmp_path / "arena.png")
    assert (tmp_path / "arena.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plan_adds_one_sft_rl_row_per_strategy_at_the_same_budget(tmp_path):
    args = SimpleNamespace(model="M/sft", base="M/init", seeds=[0, 1], iterations=2, test_size=30, workers=2, threads=1)
    jobs = plan(args, {"q_argmax": {"decision_rule": "q_argmax"}}, tmp_path, parse_strategies("otc,adatir,roc"))
    rows = [j for j in jobs if j["kind"] != "start"]
    assert [r["row"] for r in rows[::2]] == ["SFT+RL", "Base+RL", "RL+OTC", "RL+AdaTIR", "RL+RoC", "EM (q_argmax)"]
    assert len({j["per_iteration"] for j in rows}) == 1  # train-em's tiny preset: 32 x (2 x 4 + 2) = 5 RL steps of 64
    assert len({(j["iterations"], j["queries"], j["rl_steps"]) for j in rows}) == 1
    for name, strategy in (("RL+OTC", "otc"), ("RL+AdaTIR", "adatir"), ("RL+RoC", "roc")):
        strategy_jobs = [j for j in rows if j["row"] == name]
        assert [j["seed"] for j in strategy_jobs] == [0, 1]
        assert all(j["rl_overrides"] == {"strategy": strategy} and j["model"] == "M/sft" and j["kind"] == "rl" for j in strategy_jobs)
    assert next(j for j in rows if j["row"] == "SFT+RL")["rl_overrides"] == {}
    assert "rl_overrides" not in next(j for j in rows if j["row"].startswith("EM"))
    small = plan(args, {}, tmp_path, queries=4)
    assert {j["queries"] for j in small} == {4} and {j["rl_steps"] for j in small} == {1}


def test_every_rl_row_satisfies_what_the_strategies_need():
    from harness.rl.config import preset
    from harness.rl.strategies import build_strategy

    for overrides in parse_strategies("otc,adatir,roc").values():
        assert build_strategy(preset("tiny").updated(**overrides)) is not None  # RoC: even group; no bonuses


def test_bad_strategies_are_one_error_line(tmp_path):
    from typer.testing import CliRunner

    from harness.cli import app

    for folder in ("sft", "init"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "config.json").write_text("{}")
    for strategies, message in (("otc,nonsense", "unknown strategy 'nonsense'"), ("none", "unknown strategy 'none'"),
                                ("roc,roc", "'roc,roc' names a strategy twice")):
        result = CliRunner().invoke(app, ["testbed", "arena", "--model", str(tmp_path / "sft"), "--strategies", strategies])
        assert result.exit_code == 2 and result.stderr.startswith(f"error: --strategies: {message}")
        assert len(result.stderr.strip().splitlines()) == 1


# The CI smoke of the benchmark command: 12 one-iteration jobs (2 starts, 10 trained rows) of 40-64 rollouts each,
# 3 held-out problems. 260 s here on 2 cores shared with three other sessions (load average ~7); ~200 core-seconds.
@pytest.mark.timeout(900)
def test_arena_command_writes_every_row_end_to_end(warmed_testbed_model, tmp_path):
    out = tmp_path / "arena.md"
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "harness.cli_main", "testbed", "arena", "--model", str(warmed_testbed_model),
                    "--base", str(warmed_testbed_model.parent / "init"), "--seeds", "0", "--iterations", "1",
                    "--queries", "4", "--test-size", "3", "--workers", "2", "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - began
    rows = ["SFT only", "Base only", "SFT+RL", "Base+RL", *ROW_NAMES.values(), "EM (q_argmax)", "EM (pi_q_free)",
            "EM (pi_q_prefix_mean)"]
    board = json.loads(out.with_suffix(".json").read_text())
    assert sorted(board["starts"]) == ["Base only", "SFT only"]
    assert sorted(run["row"] for run in board["runs"]) == sorted(rows[2:])
    assert 0 < board["seconds"] <= seconds and set(board["pareto_front"]) <= set(rows)
    for run in board["runs"]:
        [start, (spent, final)] = run["curve"]
        assert spent in (40, 64) and len(final["correct"]) == len(final["tool_calls"]) == 3
        assert all(0 <= calls <= 1 for calls in final["tool_calls"])  # the tiny preset allows one call per rollout
        assert final["efficiency"]["responses"] == 3 and "seconds_per_correct" not in final["efficiency"]
        assert "oracle" in final
    table = out.read_text()
    assert table.startswith("# Arena on `arith`") and "--strategies otc,adatir,roc" in table
    assert all(f"\n| {row} | " in table for row in rows)
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
