"""The `arith` task family: procedural problems where code helps, does not matter, or hurts.

Three kinds, three difficulty levels each, every sample labelled with ``kind``, ``level`` and ``op``:

* ``cot-sufficient``: a tiny model can answer in its head (compare two numbers, small additions);
  code would only cost a call and tokens.
* ``code-necessary``: no tiny model computes these in one step, but one line of Python does (a story
  whose total needs a 4-digit product, a product of two 5-digit numbers, a modular power).
* ``code-unhelpful``: a story whose answer is stated in its text, told with numbers that invite a
  computation ("Ann had 7 coins at first, then got 5 coins from each of 3 bags. How many coins did
  Ann have at first?"). Reading gives the answer; the program a code habit writes (``7 + 5 * 3``)
  computes something else. The stories share their wording with the code-necessary ones, which ask
  for the computed total, so the two kinds differ in what is asked, not in how they look.

Train and test are disjoint by construction: a question belongs to the test split iff a hash of its
text falls in the test bucket, so no seed or size can make them overlap. Golds come from Python
arithmetic, and ``cot_solution`` / ``code_program`` write both solution styles from the same numbers.
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
    expression: str  # what a code solution prints; for code-unhelpful stories, the tempting wrong computation
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
    # Both numbers restated in question order first: the answer is then copied from beside the sign
    # just written, not picked out of the question (the model miscopied the first number that way).
    return f"{steps} So {a} {sign(a, b)} {b}. The larger number is {max(a, b)}."


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


def _story_people(rng: random.Random) -> tuple[str, str]:
    return rng.choice(NAMES), rng.choice(THINGS)


def _code_necessary(rng: random.Random, level: int) -> Problem:
    if level == 1:
        name, thing = _story_people(rng)
        start, per_bag, bags = _number(rng, 4), _number(rng, 3), _number(rng, 2)
        total = f"{start} + {per_bag} * {bags}"
        value = start + per_bag * bags
        question = (f"{name} had {start} {thing} at first, then got {per_bag} {thing} from each of {bags} bags. "
                    f"How many {thing} does {name} have now?")
        return Problem(question, value, KINDS[1], 1, "story-total", total, f"{total} = {value}.")
    if level == 2:
        name, thing = _story_people(rng)
        boxes, per_box = _number(rng, 5), _number(rng, 5)
        question = f"{name} packs {boxes} boxes with {per_box} {thing} each. How many {thing} does {name} pack?"
        return Problem(question, boxes * per_box, KINDS[1], 2, "story-product", f"{boxes} * {per_box}",
                       f"{boxes} * {per_box} = {boxes * per_box}.")
    base, exponent, modulus = _number(rng, 2), _number(rng, 3), _number(rng, 3)
    value = pow(base, exponent, modulus)
    return Problem(f"What is {base}^{exponent} mod {modulus}?", value, KINDS[1], 3, "modpow",
                   f"pow({base}, {exponent}, {modulus})", f"{base}^{exponent} mod {modulus} = {value}.")


def _code_unhelpful(rng: random.Random, level: int) -> Problem:
    """The code-necessary stories' wording, asking for a number the text states (the trap is what code computes)."""
    name, thing = _story_people(rng)
    if level == 1:
        start, per_bag, bags = _number(rng, 2), _number(rng, 1), _number(rng, 1)
        question = (f"{name} had {start} {thing} at first, then got {per_bag} {thing} from each of {bags} bags. "
                    f"How many {thing} did {name} have at first?")
        return Problem(question, start, KINDS[2], 1, "story-at-first", f"{start} + {per_bag} * {bags}",
                       f"{name} had {start} {thing} at first.")
    if level == 2:
        had = _number(rng, 3)
        kept = rng.randint(10, had - 1)
        while 2 * kept == had:  # then the trap (had - kept) would be right by accident
            kept = rng.randint(10, had - 1)
        question = f"{name} had {had} {thing} and lost all but {kept}. How many {thing} does {name} have left?"
        return Problem(question, kept, KINDS[2], 2, "story-all-but", f"{had} - {kept}",
                       f"All but {kept} were lost, so {name} has {kept} {thing} left.")
    boxes, per_box = _number(rng, 2), _number(rng, 2)
    question = f"{name} packs {boxes} boxes with {per_box} {thing} each. How many {thing} are in each box?"
    return Problem(question, per_box, KINDS[2], 3, "story-per-box", f"{boxes} * {per_box}",
                   f"Each box holds {per_box} {thing}.")


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


def generate(split: str = "test", size: int = 300, seed: int = 0, kinds: list[str] | tuple[str, ...] = KINDS) -> list[dict]:
    """Rows for ``tasks/arith.toml`` (the eval pipeline's ``generator`` hook); ``kinds`` narrows a
    trainer's task (``task_args``) to some kinds."""
    return [
        {"id": f"arith-{split}-{seed}-{index}", "question": p.question, "answer": str(p.answer),
         "kind": p.kind, "level": p.level, "op": p.op}
        for index, p in enumerate(problems(split, size, seed, tuple(kinds)))
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
    """The one-line program a code habit writes: the answer, except on code-unhelpful stories, where it
    computes the trap from the numbers in the text."""
    return f"print({problem.expression})\n"
