"""The `arith` task family: procedural problems where code helps, does not matter, or cannot help.

Three kinds, three difficulty levels each, every sample labelled with ``kind``, ``level`` and ``op``:

* ``cot-sufficient``: a tiny model can answer in its head (compare two numbers, small additions);
  code would only cost a call and tokens.
* ``code-necessary``: no tiny model computes these in one step, but one line of Python does (a long
  sum, a product of two 5-digit numbers, a modular power).
* ``code-unhelpful``: the answer is a fact stated in the text (who has how many of what); a program
  can only restate what the model already had to find.

Train and test are disjoint by construction: a question belongs to the test split iff a hash of its
text falls in the test bucket, so no seed or size can make them overlap. Golds come from Python
arithmetic, and ``solve`` writes both solution styles from the same numbers.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import random
from dataclasses import dataclass

KINDS = ("cot-sufficient", "code-necessary", "code-unhelpful")
LEVELS = (1, 2, 3)
SPLITS = ("train", "test")
TEST_BUCKETS = 10  # one bucket in ten is the test split
NAMES = ("Ann", "Bob", "Cai", "Dev", "Eva", "Fay", "Gus", "Hal", "Ida", "Jon", "Kim", "Lee")
THINGS = ("coins", "stamps", "books", "shells", "cards", "marbles")


@dataclass(frozen=True)
class Problem:
    question: str
    answer: int
    kind: str
    level: int
    op: str
    expression: str  # the Python expression a code solution prints ("" for lookups: the fact is in the text)
    reasoning: str  # what a chain-of-thought demonstration shows before its answer (digit by digit where a tiny model needs it)


def _number(rng: random.Random, digits: int) -> int:
    return rng.randint(10 ** (digits - 1), 10**digits - 1)


def _compare_steps(a: int, b: int) -> str:
    """Tens first, units only on a tie: the comparison a person does digit by digit."""
    def sign(x: int, y: int) -> str:
        return "<" if x < y else ">" if x > y else "="
    steps = f"Tens: {a // 10} {sign(a // 10, b // 10)} {b // 10}."
    if a // 10 == b // 10:
        steps += f" Units: {a % 10} {sign(a % 10, b % 10)} {b % 10}."
    return f"{steps} The larger number is {max(a, b)}."


def _addition_steps(a: int, b: int) -> str:
    """Column addition with the carry written out: every step is one single-digit fact a tiny model can learn."""
    units = a % 10 + b % 10
    tens = a // 10 + b // 10 + units // 10
    return (f"Units: {a % 10} + {b % 10} = {units}, carry {units // 10}. "
            f"Tens: {a // 10} + {b // 10} + {units // 10} = {tens}. So {a} + {b} = {a + b}.")


def _cot_sufficient(rng: random.Random, level: int) -> Problem:
    if level == 1:
        a, b = _number(rng, 2), _number(rng, 2)
        while a == b:
            b = _number(rng, 2)
        return Problem(f"Which is larger, {a} or {b}?", max(a, b), KINDS[0], 1, "compare", f"max({a}, {b})", _compare_steps(a, b))
    a, b = _number(rng, 2), _number(rng, 1 if level == 2 else 2)
    return Problem(f"What is {a} + {b}?", a + b, KINDS[0], level, "add", f"{a} + {b}", _addition_steps(a, b))


def _code_necessary(rng: random.Random, level: int) -> Problem:
    if level == 1:
        terms = [_number(rng, 3) for _ in range(4)]
        text = ", ".join(map(str, terms))
        total = " + ".join(map(str, terms))
        return Problem(f"What is the sum of {text}?", sum(terms), KINDS[1], 1, "long-sum", total, f"{total} = {sum(terms)}.")
    if level == 2:
        a, b = _number(rng, 5), _number(rng, 5)
        return Problem(f"What is {a} * {b}?", a * b, KINDS[1], 2, "multiply", f"{a} * {b}", f"{a} * {b} = {a * b}.")
    base, exponent, modulus = _number(rng, 2), _number(rng, 3), _number(rng, 3)
    value = pow(base, exponent, modulus)
    return Problem(f"What is {base}^{exponent} mod {modulus}?", value, KINDS[1], 3, "modpow",
                   f"pow({base}, {exponent}, {modulus})", f"{base}^{exponent} mod {modulus} = {value}.")


def _code_unhelpful(rng: random.Random, level: int) -> Problem:
    people = rng.sample(NAMES, level + 1)
    thing = rng.choice(THINGS)
    counts = [_number(rng, rng.randint(2, 4)) for _ in people]
    facts = " ".join(f"{name} has {count} {thing}." for name, count in zip(people, counts))
    asked = rng.randrange(len(people))
    question = f"{facts} How many {thing} does {people[asked]} have?"
    return Problem(question, counts[asked], KINDS[2], level, "lookup", "", f"{people[asked]} has {counts[asked]} {thing}.")


MAKERS = {KINDS[0]: _cot_sufficient, KINDS[1]: _code_necessary, KINDS[2]: _code_unhelpful}


def split_of(question: str) -> str:
    bucket = int.from_bytes(hashlib.sha256(question.encode()).digest()[:4], "little") % TEST_BUCKETS
    return "test" if bucket == 0 else "train"


def problems(split: str, size: int, seed: int = 0, kinds: tuple[str, ...] = KINDS) -> list[Problem]:
    """``size`` problems of ``split``, kinds and levels in turn, the same for the same arguments.

    Test problems are distinct; train problems are independent draws, so small spaces (2-digit plus
    1-digit has 810 questions) may repeat, as they would in any training stream."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown arith kind(s) {', '.join(sorted(unknown))}; choose from {', '.join(KINDS)}")
    rng = random.Random(f"arith:{split}:{seed}")
    chosen, seen = [], set()
    slots = [(kind, level) for kind in kinds for level in LEVELS]
    attempts = 0
    while len(chosen) < size:
        kind, level = slots[len(chosen) % len(slots)]
        problem = MAKERS[kind](rng, level)
        attempts += 1
        if attempts > 200 * max(size, 1):
            raise ValueError(f"cannot draw {size} distinct {split} problems")
        if split_of(problem.question) == split and (split == "train" or problem.question not in seen):
            seen.add(problem.question)
            chosen.append(problem)
    return chosen


def generate(split: str = "test", size: int = 300, seed: int = 0) -> list[dict]:
    """Rows for ``tasks/arith.toml`` (the eval pipeline's ``generator`` hook)."""
    return [
        {"id": f"arith-{split}-{seed}-{index}", "question": p.question, "answer": str(p.answer),
         "kind": p.kind, "level": p.level, "op": p.op}
        for index, p in enumerate(problems(split, size, seed))
    ]


def run_program(code: str) -> str:
    """What our own generated program prints (never model output: that goes through the sandbox)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(code, {"__builtins__": {"print": print, "max": max, "pow": pow}})  # noqa: S102 - solver code only
    return buffer.getvalue()


def cot_solution(problem: Problem) -> str:
    """The reasoning a demonstration shows: the fact or the result, then the boxed answer."""
    return f"{problem.reasoning}\nThe answer is \\boxed{{{problem.answer}}}."


def code_program(problem: Problem) -> str:
    """A one-line program whose printed output is the answer (a lookup can only print the fact it found)."""
    return f"print({problem.expression or problem.answer})\n"
