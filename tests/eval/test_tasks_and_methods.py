"""Task and method definitions: loading, versions, custom tasks and clear errors."""

from __future__ import annotations

import json

import pytest

from harness.eval.methods import MethodError, available_methods, load_method
from harness.eval.tasks import TaskError, load_samples, load_task

SIZES = {"math500": 500, "gsm8k": 1319, "aime24": 30, "aime25": 30, "amc23": 40}


@pytest.mark.parametrize("name", sorted(SIZES))
def test_builtin_tasks_load_from_the_shared_data(name, data_dir):
    task = load_task(name)
    samples, fingerprint = load_samples(task, data_dir)
    assert len(samples) == SIZES[name] and len(fingerprint) == 16
    assert all(s.question and s.answer is not None for s in samples)


def test_math500_keeps_level_and_subject(data_dir):
    samples, _ = load_samples(load_task("math500"), data_dir)
    assert samples[0].id.startswith("test/") and set(samples[0].metadata) == {"level", "subject"}


def test_missing_data_says_how_to_fix_it(tmp_path, monkeypatch):
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    with pytest.raises(TaskError, match="--data-dir"):
        load_samples(load_task("gsm8k"), tmp_path)


def test_unknown_task_lists_the_builtins():
    with pytest.raises(TaskError, match="math500"):
        load_task("nope")


def test_custom_jsonl_task(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(json.dumps({"q": f"{i}+1?", "a": i + 1, "key": f"k{i}"}) for i in range(3)) + "\n")
    task = load_task(str(path), question_field="q", answer_field="a", id_field="key")
    samples, _ = load_samples(task)
    assert [s.id for s in samples] == ["k0", "k1", "k2"] and samples[2].answer == 3 and task.grader == "math500"


def test_broken_row_names_its_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "1", "answer": 1}\n{broken\n')
    with pytest.raises(TaskError, match=":2:"):
        load_samples(load_task(str(path)))


def test_missing_field_is_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"problem": "1", "answer": 1}\n')
    with pytest.raises(TaskError, match="missing field"):
        load_samples(load_task(str(path)))


def test_every_method_loads_and_formats_a_question():
    assert {"cot", "tir", "tora", "auto", "code-trigger", "cot-trigger"} <= set(available_methods())
    for name in available_methods():
        method = load_method(name)
        assert "What is 1+1?" in method.messages("What is 1+1?")[-1]["content"]
    assert load_method("tir").tools and not load_method("cot").tools
    assert load_method("code-trigger").messages("Q")[-1]["content"] == "Q\nLet's write a program."


def test_custom_prompt_file_and_its_errors(tmp_path):
    good = tmp_path / "mine.toml"
    good.write_text('name = "mine"\nuser = "Solve: {question}"\ntools = true\n')
    assert load_method(str(good)).messages("x") == [{"role": "user", "content": "Solve: x"}]
    bad = tmp_path / "bad.toml"
    bad.write_text('user = "no placeholder"\n')
    with pytest.raises(MethodError, match="question"):
        load_method(str(bad))
    with pytest.raises(MethodError, match="unknown method"):
        load_method("nonexistent")


def test_task_version_changes_with_the_definition(tmp_path, monkeypatch):
    import harness.eval.tasks as tasks

    before = load_task("gsm8k").version
    original = (tasks.resource_dir("tasks") / "gsm8k.toml").read_text()
    (tmp_path / "gsm8k.toml").write_text(original.replace("breakdown = []", 'breakdown = ["x"]'))
    monkeypatch.setattr(tasks, "resource_dir", lambda name: tmp_path)
    assert load_task("gsm8k").version != before
