"""Run directories: torn lines, config mismatches, overwrite."""

from __future__ import annotations

import json

import pytest

from harness.eval.store import RunMismatchError, RunStore, read_samples


def test_torn_last_line_is_dropped_and_cut_from_the_file(tmp_path):
    path = tmp_path / "samples.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": 3, "b": "half wri')
    assert read_samples(path) == [{"a": 1}, {"a": 2}]
    assert path.read_text() == '{"a": 1}\n{"a": 2}\n'


def test_store_resumes_and_refuses_another_config(tmp_path):
    store = RunStore(tmp_path / "run")
    assert store.open({"config_hash": "aaa"}, overwrite=False) == []
    store.append([{"doc_id": "1", "attempt": 0}])
    assert RunStore(tmp_path / "run").open({"config_hash": "aaa"}, overwrite=False) == [{"doc_id": "1", "attempt": 0}]
    with pytest.raises(RunMismatchError, match="another configuration"):
        RunStore(tmp_path / "run").open({"config_hash": "bbb"}, overwrite=False)
    assert RunStore(tmp_path / "run").open({"config_hash": "bbb"}, overwrite=True) == []
    assert json.loads((tmp_path / "run" / "run.json").read_text())["config_hash"] == "bbb"
