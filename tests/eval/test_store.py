"""Run directories: torn and corrupt lines, duplicates, config hashes on every line, the lock, overwrite."""

from __future__ import annotations

import json

import pytest

from harness.eval.store import RunMismatchError, RunStore, read_samples

KEY = ("doc_id", "attempt")


def sample(doc_id: str, attempt: int = 0, **extra) -> dict:
    return {"doc_id": doc_id, "attempt": attempt, "response": "r", **extra}


def lines_of(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_torn_last_line_is_skipped_by_readers_and_cut_by_the_run_that_owns_the_file(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    path = run / "samples.jsonl"
    path.write_text('{"a": 1, "config_hash": "aaa"}\n{"a": 2, "config_hash": "aaa"}\n{"a": 3, "b": "half wri')
    assert read_samples(path) == [{"a": 1, "config_hash": "aaa"}, {"a": 2, "config_hash": "aaa"}]
    assert path.read_text().endswith("half wri")  # a reader never changes a file another run may be writing
    store = RunStore(run)
    assert len(store.open({"config_hash": "aaa"}, overwrite=False)) == 2
    assert path.read_text() == '{"a": 1, "config_hash": "aaa"}\n{"a": 2, "config_hash": "aaa"}\n'


def test_store_resumes_and_refuses_another_config(tmp_path):
    store = RunStore(tmp_path / "run")
    assert store.open({"config_hash": "aaa"}, overwrite=False) == []
    store.append([{"doc_id": "1", "attempt": 0}])
    store.close()
    assert RunStore(tmp_path / "run").open({"config_hash": "aaa"}, overwrite=False) == [{"doc_id": "1", "attempt": 0, "config_hash": "aaa"}]
    with pytest.raises(RunMismatchError, match="another configuration"):
        RunStore(tmp_path / "run").open({"config_hash": "bbb"}, overwrite=False)
    assert RunStore(tmp_path / "run").open({"config_hash": "bbb"}, overwrite=True) == []
    assert json.loads((tmp_path / "run" / "run.json").read_text())["config_hash"] == "bbb"


def test_every_line_carries_the_config_hash_so_a_lost_run_json_cannot_adopt_other_samples(tmp_path):
    store = RunStore(tmp_path / "run", key=KEY)
    store.open({"config_hash": "aaa"}, overwrite=False)
    store.append([sample("1")])
    store.close()
    assert lines_of(tmp_path / "run" / "samples.jsonl")[0]["config_hash"] == "aaa"
    (tmp_path / "run" / "run.json").unlink()
    with pytest.raises(RunMismatchError, match="aaa != bbb"):
        RunStore(tmp_path / "run", key=KEY).open({"config_hash": "bbb"}, overwrite=False)
    resumed = RunStore(tmp_path / "run", key=KEY)
    assert [r["doc_id"] for r in resumed.open({"config_hash": "aaa"}, overwrite=False)] == ["1"]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["config_hash"] == "aaa"


def test_corrupt_and_duplicate_lines_are_set_aside_and_later_lines_still_count(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    good = [json.dumps(sample(str(i), config_hash="aaa")) for i in range(4)]
    bad = ['{"doc_id": "x", "attem', "{}", "[1, 2]", good[1]]
    lines = [line.encode() for line in (good[0], bad[0], good[1], bad[1], bad[2], good[2], bad[3])]
    (run / "samples.jsonl").write_bytes(b"\n".join([*lines, b'{"doc_id": "\xff"}', good[3].encode()]) + b"\n")
    store = RunStore(run, key=KEY, required=("response",))
    records = store.open({"config_hash": "aaa"}, overwrite=False)
    assert [r["doc_id"] for r in records] == ["0", "1", "2", "3"]
    assert [(r.line, r.reason) for r in store.rejected] == [
        (2, "not valid JSON"), (4, "missing doc_id, attempt, response"), (5, "not a JSON object"),
        (7, "repeats doc_id/attempt ('1', 0)"), (8, "not valid JSON")]
    assert "moved 5 bad line(s) to samples.rejected.jsonl" in store.rejected_summary()
    assert (run / "samples.jsonl").read_text().splitlines() == good
    assert (run / "samples.rejected.jsonl").read_bytes().count(b"\n") == 5  # nothing is lost


def test_a_second_run_on_the_same_directory_is_refused_while_the_first_holds_it(tmp_path):
    from harness.eval.run_lock import RunLockedError

    first = RunStore(tmp_path / "run")
    first.open({"config_hash": "aaa"}, overwrite=False)
    with pytest.raises(RunLockedError, match="in use by another run"):
        RunStore(tmp_path / "run").open({"config_hash": "aaa"}, overwrite=False)
    first.close()
    RunStore(tmp_path / "run").open({"config_hash": "aaa"}, overwrite=False)


def test_an_unwritable_samples_file_is_refused_before_anything_is_generated(tmp_path):
    from harness.eval.store import RunStoreError

    (tmp_path / "run" / "samples.jsonl").mkdir(parents=True)
    with pytest.raises(RunStoreError, match="samples.jsonl"):
        RunStore(tmp_path / "run").open({"config_hash": "aaa"}, overwrite=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunStoreError, match="cannot use run directory"):
        RunStore(tmp_path / "file" / "run").open({"config_hash": "aaa"}, overwrite=False)
