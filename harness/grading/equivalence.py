"""Decide whether an extracted answer equals the gold answer.

Cheap, exact checks run first (normalized strings, exact rationals) and are decisive where they
apply; only then does math-verify parse both sides into SymPy and compare. Its own signal-based
timeouts are switched off: the caller bounds every comparison with a process-level deadline
(see ``pool.py``).

Rules worth knowing (each is a table row in tests/grading):
- plain numbers compare exactly as rationals: no relative tolerance (10001 != 10000), thousands
  separators and ``$`` are ignored, ``27.0 == 27``, ``025 == 25``;
- ``50\\%`` equals ``50`` but never ``0.5`` (no percent x100 trap);
- no numeric tolerance: only a printed float of a fraction without a finite decimal (``1/12``) may
  differ from it, in its last place; integers and ``1/4`` match exactly (``5.0000001 != 5``);
- values that are exact rationals on both sides (``1/2004!``) compare exactly, never as floats;
- everything else (intervals, sets, matrices, relations, symbolic expressions) is math-verify's.
"""

from __future__ import annotations

import logging
import re
from fractions import Fraction

logging.getLogger("math_verify").setLevel(logging.ERROR)

_SPACING = re.compile(r"\\[!,;:> ]|\\(?:q)?quad|\\displaystyle|\\left|\\right|\\limits")
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|textnormal|mathrm|mbox|mathbf)\{([^{}]*)\}")
_NUMBER_IN_TEXT = re.compile(r"\\(?:text|textbf|textit|textnormal|mathrm|mbox|mathbf)\{([^{}]*\d[^{}]*)\}")
_DEGREES = re.compile(r"\^\s*\{?\\circ\}?|°")
_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_DECIMAL = re.compile(r"^-?(?:\d+(?:\.\d*)?|\.\d+)$")
_SLASH_FRACTION = re.compile(r"^(-?\d+)/(\d+)$")
_LATEX_FRACTION = re.compile(r"^(-?)\\frac\{(-?\d+)\}\{(\d+)\}$")
_MIXED_NUMBER = re.compile(r"^(\d+)\s*(?:\s(\d+)/(\d+)|\\frac\{(\d+)\}\{(\d+)\})$")
_UNIT_WORD = r"(?!(?:pi|e|i|sin|cos|tan|log|ln|exp|sqrt)\b)[a-zA-Z]{2,}(?:\^\d)?"
_UNIT_SUFFIX = re.compile(
    rf"^(.*?\d)\s*(?:\\(?:text|mbox|textnormal|mathrm)\{{[^{{}}]*\}}|{_UNIT_WORD}(?:\s+{_UNIT_WORD})*|€|m\^\{{2\}})$"
)
_SCIENTIFIC = re.compile(r"^(-?\d+(?:\.\d+)?)\s*(?:\\times|\\cdot|\*|x)\s*10\^\{?(-?\d+)\}?$")
_DECIMAL_LITERAL = re.compile(r"(?<![\d.])(\d*)\.(\d+)(?![\d.])")
_ELLIPSIS = re.compile(r"\\[lc]?dots|\.\.\.")
_SQRT_PARENS = re.compile(r"\\sqrt\(([^()]*)\)")
_ROMAN_CONSTANT = re.compile(r"\\(?:mathrm|text|operatorname)\{([eiπ])\}")
_FUNCTION_LHS = re.compile(r"^\s*(?:y|[a-zA-Z]\([a-z]\))\s*=(?!=)")
# A decimal with this many places is a printed float (0.0833333333333333), not a rounded answer.
_FLOAT_PRINTOUT_PLACES = 6
_HUGE_NUMBER_BITS = 256


def normalize(answer: str) -> str:
    """A canonical spelling used for the string fast path: no math delimiters, spacing or wrappers."""
    text = answer.strip().rstrip(".").strip()
    for left, right in _DELIMITERS:
        if text.startswith(left) and text.endswith(right) and len(text) >= len(left) + len(right):
            text = text[len(left) : len(text) - len(right)].strip()
            break
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("{,}", ",")
    text = _SPACING.sub("", text)
    text = _TEXT_WRAPPER.sub(r"\1", text)
    text = _DEGREES.sub("", text)
    text = text.replace("\\$", "").replace("$", "")
    return re.sub(r"\s+", "", text).rstrip(".")


def as_number(answer: str) -> tuple[Fraction, bool, int | None] | None:
    """The exact value of a plain number, whether it carried a percent sign, and its decimal places
    (None for integers and fractions, which are exact); None when the answer is not a plain number."""
    text = answer.strip().rstrip(".").strip()
    for left, right in _DELIMITERS:
        if text.startswith(left) and text.endswith(right) and len(text) > len(left) + len(right):
            text = text[len(left) : len(text) - len(right)].strip()
            break
    text = text.replace("\\!", "").replace("{,}", ",").replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    text = text.replace("\\$", "").replace("$", "").strip()
    unit = _UNIT_SUFFIX.match(text)
    if unit:
        text = unit.group(1)
    percent = text.endswith("\\%") or text.endswith("%")
    text = text.removesuffix("\\%").removesuffix("%").strip()
    if _THOUSANDS.match(text):
        text = text.replace(",", "")
    if _DECIMAL.match(text):
        return Fraction(text), percent, _places(text)
    m = _SCIENTIFIC.match(text)
    if m:
        mantissa, exponent = m.group(1), int(m.group(2))
        places = _places(mantissa)
        return Fraction(mantissa) * Fraction(10) ** exponent, percent, None if places is None else places - exponent
    for pattern in (_SLASH_FRACTION, _LATEX_FRACTION):
        m = pattern.match(text)
        if m:
            groups = [g for g in m.groups() if g not in (None, "")]
            sign = -1 if groups[0] == "-" else 1
            numerator, denominator = (int(g) for g in groups[-2:])
            return (sign * Fraction(numerator, denominator), percent, None) if denominator else None
    m = _MIXED_NUMBER.match(text)
    if m:
        whole, *parts = (g for g in m.groups() if g is not None)
        return int(whole) + Fraction(int(parts[0]), int(parts[1])), percent, None
    return None


def _places(decimal: str) -> int | None:
    return len(decimal.split(".", 1)[1]) if "." in decimal else None


def _math_verify_config():
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    return [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]


def parse_math(text: str, is_answer: bool) -> list:
    """math-verify's parse; a bare answer is wrapped in ``$...$`` first (it fails to parse without).

    Empty when nothing parsed into SymPy: math-verify would otherwise hand back the raw string. For
    an answer, LaTeX that does not parse may fall back to a plain expression only if that expression
    is the whole answer: math-verify would take the ``5`` of ``5@0`` or ``5 \\neq`` and drop the rest."""
    from math_verify import ExprExtractionConfig, parse

    text = _ROMAN_CONSTANT.sub(r"\1", _SQRT_PARENS.sub(r"\\sqrt{\1}", text))
    if not is_answer:
        return _sympy_only(parse(text, _math_verify_config(), parsing_timeout=None))
    if not any(text.lstrip().startswith(left) for left, _ in _DELIMITERS):
        text = f"${text}$"
    parsed = _sympy_only(parse(text, _math_verify_config()[:1], parsing_timeout=None))
    if parsed:
        return parsed
    parsed = _sympy_only(parse(text, [ExprExtractionConfig()], parsing_timeout=None))
    return parsed if parsed and _spaceless(parsed[-1]) == _spaceless(_strip_delimiters(text)).rstrip(".\\") else []


def _sympy_only(parsed: list) -> list:
    return parsed if any(not isinstance(item, str) for item in parsed) else []


def _strip_delimiters(text: str) -> str:
    text = text.strip()
    for left, right in _DELIMITERS:
        if text.startswith(left) and text.endswith(right) and len(text) >= len(left) + len(right):
            return text[len(left) : len(text) - len(right)]
    return text


def _spaceless(text: str) -> str:
    return re.sub(r"\s+", "", text)


def spell_out_numbers_in_text(answer: str) -> str:
    """``5\\text{0}`` is 50, not 5 with a unit: a text block holding a digit loses its wrapper, where
    math-verify and the unit rule would drop it whole."""
    return _NUMBER_IN_TEXT.sub(r"\1", answer)


def _exact_rational(expr):
    """An exact sympy Rational for a closed-form rational number, else None."""
    import sympy

    if not isinstance(expr, sympy.Basic) or isinstance(expr, sympy.Float) or expr.free_symbols:
        return None
    if not expr.is_number or expr.has(sympy.Float) or not expr.is_rational:
        return None
    value = expr.doit()
    return value if isinstance(value, sympy.Rational) else None


def _has_huge_numbers(expr) -> bool:
    """True when ``expr`` holds, or spells as a power, a number of over ``_HUGE_NUMBER_BITS`` bits
    (``2^{1000}``, ``1/2^{1000}``): SymPy's numeric and algebraic routines crawl on those."""
    import sympy

    if not isinstance(expr, (sympy.Basic, sympy.MatrixBase)):
        return False
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, sympy.Rational):
            bits = max(abs(int(node.p)).bit_length(), abs(int(node.q)).bit_length())
        elif isinstance(node, sympy.Pow) and isinstance(node.base, sympy.Integer) and isinstance(node.exp, sympy.Integer):
            bits = abs(int(node.exp)) * abs(int(node.base)).bit_length()
        else:
            continue
        if bits > _HUGE_NUMBER_BITS:
            return True
    return False


def has_finite_decimal(parsed: list) -> bool:
    """Whether a parsed answer is a rational number with a finite decimal (any integer, ``1/4``)."""
    value = _exact_rational(parsed[0])
    return value is not None and _terminates(Fraction(int(value.p), int(value.q)))


def decimals_as_fractions(text: str) -> str:
    """``2.5`` spelled ``\\frac{25}{10}``: math-verify rounds floats to six places before comparing,
    which would make ``\\frac{10.0000001}{2}`` equal to 5; fractions are compared exactly."""
    return _DECIMAL_LITERAL.sub(lambda m: f"\\frac{{{m.group(1)}{m.group(2)}}}{{1{'0' * len(m.group(2))}}}", text)


def symbolic_match(gold_parsed: list, pred_parsed: list) -> bool:
    """Exact for closed-form rationals; structural only when huge numbers are involved (numeric
    evaluation of ``2^{1/2^{1000}}`` runs for minutes); math-verify's full comparison otherwise."""
    from math_verify import verify

    gold_value, pred_value = _exact_rational(gold_parsed[0]), _exact_rational(pred_parsed[0])
    if gold_value is not None and pred_value is not None:
        return bool(gold_value == pred_value)
    if _has_huge_numbers(gold_parsed[0]) or _has_huge_numbers(pred_parsed[0]):
        return bool(gold_parsed[0] == pred_parsed[0])
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))


def numbers_match(pred: str, gold: str) -> bool | None:
    """Decisive verdict when both sides are plain numbers; None when either is not.

    Exact, except that a long decimal (a printed float, six places or more) matches a fraction that
    no decimal can spell, within one unit of its last place: ``0.0833333333333333 == 1/12``. A value
    with a finite decimal (every integer, ``1/4``) is matched exactly: ``5.0000001 != 5``."""
    pred_number, gold_number = as_number(pred), as_number(gold)
    if pred_number is None or gold_number is None:
        return None
    (pred_value, _, pred_places), (gold_value, _, gold_places) = pred_number, gold_number
    if pred_value == gold_value:
        return True
    for places, exact, other_places in ((pred_places, gold_value, gold_places), (gold_places, pred_value, pred_places)):
        if places is not None and places >= _FLOAT_PRINTOUT_PLACES and other_places is None and not _terminates(exact):
            return abs(pred_value - gold_value) <= Fraction(1, 10**places)
    return False


def _terminates(value: Fraction) -> bool:
    """Whether ``value`` has a finite decimal expansion: its denominator has no prime but 2 and 5."""
    denominator = value.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    return denominator == 1


def _split_top_level(text: str) -> list[str]:
    items, depth, current = [], 0, []
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch in ",:" and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    items.append("".join(current))
    return items


def sequence_match(pred: str, gold: str) -> bool | None:
    """Patterns with an ellipsis (``1, 3, 5, \\ldots``) compare term by term; None without one.

    SymPy drops the ellipsis and then finds ``1, 2, ..., n`` equal to ``1, 3, ..., 2n-1``."""
    if not (_ELLIPSIS.search(pred) or _ELLIPSIS.search(gold)):
        return None
    pred_items, gold_items = _split_top_level(normalize(pred)), _split_top_level(normalize(gold))
    if len(pred_items) != len(gold_items):
        return False
    return all(p == g or numbers_match(p, g) for p, g in zip(pred_items, gold_items))


def strip_function_lhs(pred: str, gold: str) -> tuple[str, str]:
    """``y = 2x+3`` and ``f(x) = 2x+3`` name the same function: compare right-hand sides."""
    pred_lhs, gold_lhs = _FUNCTION_LHS.match(normalize(pred)), _FUNCTION_LHS.match(normalize(gold))
    if pred_lhs and gold_lhs:
        return normalize(pred)[pred_lhs.end() :], normalize(gold)[gold_lhs.end() :]
    return pred, gold
