"""The leaderboard's pieces that need no model: mismatch rules, reference data, task order."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness.eval.tasks import available_tasks
from harness.leaderboard.board import ordered_tasks
from harness.leaderboard.reference import METHODS, load_reference_file, load_references
from harness.leaderboard.runs import LeaderboardError, Run, mismatches

RUN = Run(directory=Path("r"), model="m", task="gsm8k", method="cot", task_version="1-abc", fingerprint="f" * 16,
          config_hash="h", attempts=1, problems=20, temperature=0.0, max_tokens=256, limit=20, metrics={}, tools={}, breakdown={})


def test_runs_that_fit_together_have_no_mismatch():
    assert mismatches([RUN, replace(RUN, method="tir", config_hash="g")]) == []


@pytest.mark.parametrize("change, reason", [
    ({"task_version": "2-def"}, "different task versions: 1-abc, 2-def"),
    ({"attempts": 4}, "different attempts per problem: 1, 4"),
    ({"problems": 16}, "different problem counts: 16, 20"),
    ({"fingerprint": "e" * 16}, "different datasets"),
])
def test_each_kind_of_mismatch_is_named(change, reason):
    found = mismatches([RUN, replace(RUN, **change)])
    assert len(found) == 1 and found[0].startswith(reason)


def test_protocol_names_greedy_and_sampled_runs():
    assert RUN.protocol == "greedy, 256 tokens"
    assert replace(RUN, attempts=8, temperature=0.6).protocol == "avg@8, T=0.6, 256 tokens"


def test_bundled_reference_rows_are_well_formed_and_name_real_tasks():
    rows = load_references()
    assert rows and all(row.method in METHODS and row.source and row.protocol for row in rows)
    assert {task for row in rows for task in row.scores} <= set(available_tasks())
    table1 = {(row.model, task): score for row in rows for task, score in row.scores.items()}
    # The paper's headline (Table 1): Qwen2.5-Base-7B and the EM-trained model.
    assert [table1[("Qwen2.5-Base-7B", t)] for t in ("gsm8k", "math500", "aime24")] == [84.88, 60.4, 13.2]
    assert [table1[("AutoCode-Qwen2.5-7B (EM)", t)] for t in ("gsm8k", "math500", "aime24")] == [89.12, 71.4, 22.6]


@pytest.mark.parametrize("text, message", [
    ('source = "s"\nprotocol = "p"\n[[rows]]\nmodel = "x"\nmethod = "sft"\nscores = { gsm8k = 1.0 }\n', "a method among"),
    ('source = "s"\nprotocol = "p"\n[[rows]]\nmodel = "x"\nmethod = "cot"\nscores = { gsm8k = 101 }\n', "percentages"),
    ('source = "s"\n[[rows]]\nmodel = "x"\nmethod = "cot"\nscores = { gsm8k = 1 }\n', "missing 'protocol'"),
    ('source = "s"\nprotocol = "p"\n[[rows]]\nmodel = "x"\nmethod = "cot"\n', "has no scores"),
])
def test_bad_reference_files_are_refused(tmp_path, text, message):
    path = tmp_path / "ref.toml"
    path.write_text(text)
    with pytest.raises(LeaderboardError, match=message):
        load_reference_file(path)


def test_tasks_keep_the_papers_order_then_the_rest():
    assert ordered_tasks(["zeta", "math500", "aime24", "gsm8k", "alpha"]) == ["gsm8k", "math500", "aime24", "alpha", "zeta"]
