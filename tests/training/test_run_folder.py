"""The one rule for trainer output folders: empty starts a run, anything else needs --resume of the same
config (or --allow-config-change, recorded), and logs are rewound to the checkpoint resumed from."""

from __future__ import annotations

import json
import re

import pytest

from harness.training.run_folder import PROVENANCE_FILE, open_run

CONFIG = {"learning_rate": 0.001, "steps": 10, "output_dir": "out"}
MAY_CHANGE = frozenset({"steps", "output_dir"})


def start(output, config=CONFIG, **flags):
    # the folder's judgement alone; its lock, which a run also takes, is tests/training/test_run_lock.py's
    return open_run(output, "train-rl", config, MAY_CHANGE, **{"resume": False, "lock": False, **flags})


def fake_checkpoint(output, step: int) -> None:
    folder = output / "checkpoints" / f"step-{step:06d}"
    folder.mkdir(parents=True)
    (folder / "trainer.json").write_text(json.dumps({"step": step, "extra": {}}))


def test_an_absent_or_empty_folder_starts_a_run_and_records_where_it_came_from(tmp_path):
    run = start(tmp_path / "new")
    assert not run.resuming and not (tmp_path / "new").exists()  # nothing written before record()
    run.record()
    provenance = json.loads((tmp_path / "new" / PROVENANCE_FILE).read_text())
    assert provenance["command"] == "train-rl" and provenance["config"] == CONFIG
    assert {"time", "argv", "harness_version"} <= set(provenance)
    (tmp_path / "empty").mkdir()
    assert not start(tmp_path / "empty", resume=True).resuming  # --resume of nothing starts afresh


def test_a_non_empty_folder_without_resume_is_refused_and_left_alone(tmp_path):
    start(tmp_path).record()
    fake_checkpoint(tmp_path, 10)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(tmp_path))}: not empty .*--resume"):
        start(tmp_path)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_resume_continues_from_the_latest_checkpoint_and_may_change_the_declared_fields(tmp_path):
    start(tmp_path).record()
    fake_checkpoint(tmp_path, 4)
    run = start(tmp_path, {**CONFIG, "steps": 20}, resume=True)
    assert run.resuming and run.step == 4
    run.record()
    provenance = json.loads((tmp_path / PROVENANCE_FILE).read_text())
    assert provenance["config"]["steps"] == 20
    assert provenance["resumes"][-1]["changed"] == {"steps": [10, 20]} and "config_before" not in provenance["resumes"][-1]


def test_resume_with_another_config_is_refused_unless_allowed_and_then_both_are_recorded(tmp_path):
    start(tmp_path).record()
    fake_checkpoint(tmp_path, 4)
    changed = {**CONFIG, "learning_rate": 0.01}
    with pytest.raises(ValueError, match="learning_rate: 0.001 in the run, 0.01 now.*--allow-config-change"):
        start(tmp_path, changed, resume=True)
    start(tmp_path, changed, resume=True, allow_config_change=True).record()
    provenance = json.loads((tmp_path / PROVENANCE_FILE).read_text())
    resumed = provenance["resumes"][-1]
    assert resumed["step"] == 4 and resumed["changed"] == {"learning_rate": [0.001, 0.01]}
    assert resumed["config_before"] == CONFIG and provenance["config"] == changed
    start(tmp_path, changed, resume=True)  # the run's config is now the new one


def test_resume_of_a_run_whose_config_has_other_fields_is_refused_unless_allowed(tmp_path):
    """A run of another harness version (a field renamed, one added): one line naming the fields."""
    start(tmp_path, {"lr": 0.001, "steps": 10}).record()
    with pytest.raises(ValueError, match=r"another harness version \(its config had lr; lacks learning_rate, output_dir\); "
                                         r"resume it with that version, or pass --allow-config-change"):
        start(tmp_path, resume=True)
    start(tmp_path, resume=True, allow_config_change=True).record()
    resumed = json.loads((tmp_path / PROVENANCE_FILE).read_text())["resumes"][-1]
    assert resumed["changed"]["lr"] == [0.001, None] and resumed["changed"]["learning_rate"] == [None, 0.001]


def test_resume_refuses_a_folder_that_is_not_a_run_of_this_command(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=f"no {PROVENANCE_FILE}"):
        start(tmp_path, resume=True)
    open_run(tmp_path / "sft", "train-sft", CONFIG, MAY_CHANGE, resume=False, lock=False).record()
    with pytest.raises(ValueError, match="a train-sft run, not train-rl"):
        start(tmp_path / "sft", resume=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        start(tmp_path / "file")


def test_rewind_keeps_one_line_per_step_up_to_the_checkpoint(tmp_path):
    start(tmp_path).record()
    fake_checkpoint(tmp_path, 2)
    lines = [json.dumps({"step": s}) for s in (1, 2, 3)] + ['{"step": 4, "rew']  # a line cut by a kill
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    run = start(tmp_path, resume=True)
    run.rewind("metrics.jsonl", lambda row: row["step"] <= run.step)
    assert [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2]
