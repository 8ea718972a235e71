"""The arith task family: deterministic, right golds (checked by independent parsing), disjoint splits, labels."""

from __future__ import annotations

import re

import pytest

from harness.eval.rollout import tool_segment_text
from harness.eval.tasks import load_samples, load_task
from harness.grading.scorer import score_response
from harness.testbed import arith
from harness.testbed.demos import code_segments, cot_segments, demonstration_rows


def recompute(question: str) -> int:
    """The gold from the question text alone, with Python arithmetic (independent of the generator)."""
    if m := re.fullmatch(r"Which is larger, (\d+) or (\d+)\?", question):
        return max(int(m[1]), int(m[2]))
    if m := re.fullmatch(r"What is (\d+) ([+*]) (\d+)\?", question):
        a, b = int(m[1]), int(m[3])
        return a + b if m[2] == "+" else a * b
    if m := re.fullmatch(r"What is (\d+)\^(\d+) mod (\d+)\?", question):
        return int(m[1]) ** int(m[2]) % int(m[3])
    if m := re.fullmatch(r"\w+ had (\d+) \w+ at first, then got (\d+) \w+ from each of (\d+) bags\. "
                         r"How many \w+ (does \w+ have now|did \w+ have at first)\?", question):
        return int(m[1]) + int(m[2]) * int(m[3]) if m[4].endswith("now") else int(m[1])
    if m := re.fullmatch(r"\w+ packs (\d+) boxes with (\d+) \w+ each\. How many \w+ (does \w+ pack|are in each box)\?", question):
        return int(m[1]) * int(m[2]) if m[3].endswith("pack") else int(m[2])
    m = re.fullmatch(r"\w+ had (\d+) \w+ and lost all but (\d+)\. How many \w+ does \w+ have left\?", question)
    return int(m[2])


def test_same_seed_same_problems_other_seed_other_problems():
    assert arith.generate("test", 60, seed=3) == arith.generate("test", 60, seed=3)
    assert arith.generate("test", 60, seed=3) != arith.generate("test", 60, seed=4)
    assert arith.problems("train", 50, seed=1) == arith.problems("train", 50, seed=1)


@pytest.mark.parametrize("split", arith.SPLITS)
def test_golds_match_python_arithmetic(split):
    for problem in arith.problems(split, 450, seed=7):
        assert problem.answer == recompute(problem.question), problem.question


def test_digit_by_digit_reasoning_states_only_true_facts():
    """Every step a CoT demonstration shows for comparisons and additions is itself correct arithmetic."""
    seen = set()
    for problem in arith.problems("train", 900, seed=5, kinds=("cot-sufficient",)):
        steps = problem.reasoning
        for x, sign, y in re.findall(r"(\d+) ([<>=]) (\d+)\.", steps) if problem.op == "compare" else []:
            assert {"<": int(x) < int(y), ">": int(x) > int(y), "=": int(x) == int(y)}[sign], steps
        for terms, total in re.findall(r"((?:\d+ \+ )+\d+) = (\d+)", steps):
            assert sum(int(t) for t in terms.split(" + ")) == int(total), steps
        if problem.op == "add":
            units = re.search(r"Units: \d+ \+ \d+ = (\d+), carry (\d)\.", steps)
            assert int(units[2]) == int(units[1]) // 10, steps
            tens = re.search(r"Tens: \d+ \+ \d+ \+ (\d) = (\d+)\.", steps)
            assert tens[1] == units[2] and int(tens[2]) * 10 + int(units[1]) % 10 == problem.answer, steps
            assert steps.endswith(f"= {problem.answer}."), steps
        else:
            assert steps.endswith(f"The larger number is {problem.answer}."), steps
        seen.add((problem.op, "Units:" in steps))
    assert seen == {("add", True), ("compare", True), ("compare", False)}


def test_splits_are_disjoint_and_test_questions_distinct():
    test = [p.question for p in arith.problems("test", 450, seed=0)]
    assert len(set(test)) == len(test)
    train = {p.question for seed in range(3) for p in arith.problems("train", 2000, seed=seed)}
    assert not train & set(test)


def test_every_kind_and_level_is_labelled_and_present():
    rows = arith.generate("test", 90, seed=0)
    assert {(row["kind"], row["level"]) for row in rows} == {(k, lv) for k in arith.KINDS for lv in arith.LEVELS}
    code_necessary = [row for row in rows if row["kind"] == "code-necessary"]
    assert all(int(row["answer"]) >= 1000 or row["op"] == "modpow" for row in code_necessary)


def test_a_trainer_can_narrow_the_task_to_some_kinds():
    rows = arith.generate("train", 60, seed=1, kinds=["cot-sufficient", "code-necessary"])
    assert {row["kind"] for row in rows} == {"cot-sufficient", "code-necessary"} and len(rows) == 60


def test_the_task_loads_through_the_eval_pipeline_with_its_breakdown():
    spec = load_task("arith")
    samples, fingerprint = load_samples(spec)
    assert len(samples) == spec.generator_args["size"]
    assert set(spec.breakdown) >= {"kind", "level"}
    assert {s.metadata["kind"] for s in samples} == set(arith.KINDS)
    assert load_samples(spec)[1] == fingerprint


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="split"):
        arith.problems("dev", 3)
    with pytest.raises(ValueError, match="unknown arith kind"):
        arith.problems("test", 3, kinds=("trivia",))


def test_both_solution_styles_are_graded_and_code_computes_the_trap_on_code_unhelpful_stories():
    for problem in arith.problems("test", 45, seed=2):
        cot = "".join(s["text"] for s in cot_segments(problem))
        code = code_segments(problem)
        assert score_response(cot, str(problem.answer), "math500").correct
        # The tool segment is what the rollout engine would append for the program's real output,
        # and the demonstration boxes what the program printed.
        program_output = arith.run_program(arith.code_program(problem))
        assert code[1] == {"kind": "tool", "text": tool_segment_text(code[0]["text"], program_output)}
        assert code[2]["text"] == f"The answer is \\boxed{{{program_output.strip()}}}."
        code_correct = score_response("".join(s["text"] for s in code), str(problem.answer), "math500").correct
        assert code_correct == (problem.kind != "code-unhelpful"), problem.question


def test_code_unhelpful_stories_word_like_code_necessary_ones_and_state_their_answer():
    """The kinds differ in what is asked, not in surface form, and the answer is a number in the text."""
    problems = arith.problems("test", 180, seed=4)
    openings = {kind: {re.sub(r"\d+", "N", p.question.split(". ")[0].split(" ", 1)[1]) for p in problems if p.kind == kind}
                for kind in ("code-necessary", "code-unhelpful")}
    assert openings["code-necessary"] & openings["code-unhelpful"]
    for problem in problems:
        if problem.kind == "code-unhelpful":
            assert re.search(rf"\b{problem.answer}\b", problem.question), problem.question
            assert int(arith.run_program(arith.code_program(problem))) != problem.answer, problem.question


def test_the_decision_is_the_opening_line_and_the_mix_follows_the_prompt():
    rows = demonstration_rows(3000, seed=0, code_ratio=0.1, forced_share=0.4)
    for row in rows:
        opening = row["segments"][0]["text"].split("\n")[0]
        assert opening == ("Let's write a program." if row["style"] == "code" else "Let's reason step by step.")
        if row["method"] in ("code-trigger", "tir"):
            assert row["style"] == "code"
        if row["method"] in ("cot", "cot-trigger"):
            assert row["style"] == "cot"
    free = [row for row in rows if row["method"] == "auto"]
    assert abs(len(free) / len(rows) - 0.6) < 0.05
    assert abs(sum(row["style"] == "code" for row in free) / len(free) - 0.1) < 0.03
