"""Unicode that changes what an answer reads as, made plain before extraction or refused.

A zero-width space inside ``50`` used to stop the LaTeX parse and leave ``5``; a combining overlay
turned ``5`` into ``5̸`` ("not 5") and was graded as 5. So, before anything else:

- superscripts and subscripts become ``^{...}`` and ``_{...}`` and vulgar fractions ``\\frac{a}{b}``
  (NFKC alone would make ``5²`` the number 52 and ``5½`` the number 51/2);
- everything is NFKC-normalised: fullwidth and mathematical digits become digits, ``=`` followed by
  a combining long solidus becomes ``≠``, accents compose;
- format characters (zero-width spaces and joiners, soft hyphens, direction marks) are dropped:
  they have no visible form, so what the reader sees is what is graded;
- a combining mark still left over (``5̸``, ``x̅``) modifies the symbol before it in a way the grader
  cannot read: :func:`has_combining_mark` makes the caller refuse such an answer.
"""

from __future__ import annotations

import re
import unicodedata

_SUPERSCRIPTS = dict(zip("⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿⁱ", "0123456789+-=()ni"))
_SUBSCRIPTS = dict(zip("₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎", "0123456789+-=()"))
_SUPERSCRIPT_RUN = re.compile(f"[{''.join(_SUPERSCRIPTS)}]+")
_SUBSCRIPT_RUN = re.compile(f"[{''.join(_SUBSCRIPTS)}]+")
_VULGAR_FRACTION = re.compile("[\u00bc-\u00be\u2150-\u215e\u2189]")


def plain_unicode(text: str) -> str:
    """``text`` with the rewrites in the module docstring; ASCII text is returned as it is."""
    if text.isascii():
        return text
    text = _SUPERSCRIPT_RUN.sub(lambda m: "^{" + "".join(_SUPERSCRIPTS[c] for c in m.group()) + "}", text)
    text = _SUBSCRIPT_RUN.sub(lambda m: "_{" + "".join(_SUBSCRIPTS[c] for c in m.group()) + "}", text)
    text = _VULGAR_FRACTION.sub(_vulgar_fraction_as_latex, text)
    text = unicodedata.normalize("NFKC", text)
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def _vulgar_fraction_as_latex(match: re.Match[str]) -> str:
    numerator, _, denominator = unicodedata.normalize("NFKC", match.group()).partition("\u2044")
    return f"\\frac{{{numerator}}}{{{denominator}}}"


def has_combining_mark(text: str) -> bool:
    """Whether a combining mark is left after :func:`plain_unicode`: one that had a precomposed form
    (an accent on a letter) was composed by NFKC, so what remains changes its symbol unreadably."""
    return not text.isascii() and any(unicodedata.category(ch) in ("Mn", "Mc", "Me") for ch in text)
