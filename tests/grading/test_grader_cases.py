"""Agreement with the field's test suites (../shared/data/grader_cases.jsonl), and self-consistency on real data."""

from __future__ import annotations

import json

from harness.grading.extract import gold_answer

CORE_AGREEMENT_FLOOR = 0.97
TASK_FILES = {"math500": "math500", "aime24": "aime24", "aime25": "aime25", "amc23": "amc23", "gsm8k": "gsm8k_test"}


def _read(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_core_agreement_with_public_grader_suites(data_dir, grading_pool):
    cases = _read(data_dir / "grader_cases.jsonl")
    grades = grading_pool.grade_many((case["pred"], case["gold"]) for case in cases)
    core = [(case, grade) for case, grade in zip(cases, grades) if case["core"]]
    wrong = [(case["pred"][-80:], case["gold"][:60], case["expected"], grade.status)
             for case, grade in core if grade.correct != case["expected"]]
    agreement = 1 - len(wrong) / len(core)
    rest = [(case, grade) for case, grade in zip(cases, grades) if not case["core"]]
    rest_agreement = sum(grade.correct == case["expected"] for case, grade in rest) / len(rest)
    print(f"core agreement {agreement:.1%} ({len(core)} cases); non-core (policy-dependent) {rest_agreement:.1%} ({len(rest)} cases)")
    assert agreement >= CORE_AGREEMENT_FLOOR, "\n".join(map(repr, wrong))


def test_every_gold_answer_grades_correct_against_itself(data_dir, grading_pool):
    pairs = []
    for task, stem in TASK_FILES.items():
        for row in _read(data_dir / f"{stem}.jsonl"):
            pairs.append((gold_answer(row["answer"]), row["answer"], task))
    grades = grading_pool.grade_many(pairs)
    failures = [(pair, grade) for pair, grade in zip(pairs, grades) if grade.correct is not True]
    assert len(pairs) == 500 + 30 + 30 + 40 + 1319
    assert not failures, failures[:10]


def test_every_math500_solution_extracts_to_its_answer(data_dir, grading_pool):
    rows = _read(data_dir / "math500.jsonl")
    grades = grading_pool.grade_many((row["solution"], row["answer"], "math500") for row in rows)
    failures = [(row["unique_id"], row["answer"], grade) for row, grade in zip(rows, grades) if grade.correct is not True]
    assert not failures, failures


def test_gsm8k_solutions_extract_strictly_to_their_answer(data_dir, grading_pool):
    rows = _read(data_dir / "gsm8k_test.jsonl")
    grades = grading_pool.grade_many((row["answer"], row["answer"], "gsm8k") for row in rows)
    assert all(grade.correct and grade.extra["strict_match"] for grade in grades)
