"""The paper's training query pool (task ``paper-pool``): the 119,274 unique queries of the released v1
code's seed data, rebuilt from the four public instruction sets it names (../shared/notes/paper.md §2:
MetaMath 90,823, MathInstruct 24,246, MMOS 2,720, OpenMath 1,485; the seed file itself is not public).

Each source's rows become (question, gold answer) by the source's own convention:

========== =========================== ============================ =============================================
source     hub id                      question                     gold answer
========== =========================== ============================ =============================================
metamath   meta-math/MetaMathQA        ``query``                    after the last "The answer is:" of ``response``
mathinstruct TIGER-Lab/MathInstruct    ``instruction``              after the last "The answer is" of ``output``
mmos       cyzhh/MMOS                  ``prompt`` less its          the last ``\\boxed{}`` of ``completion``
                                       ``<|user|>``/``<|assistant|>``
openmath   nvidia/OpenMathInstruct-1   ``question``                 ``expected_answer``
========== =========================== ============================ =============================================

A row with no gold that way is left out (MathInstruct's program-only rows state none), and so are
MathInstruct's AQuA rows (multiple choice; v1 skips every ``aqu`` task). Questions are compared by the
test-split guard's fingerprint (harness/training/split_guard.py): a question an earlier source (in the
order above, as v1 counts them) or an earlier row already gave is not taken again, and one any
benchmark (math500, aime24, aime25, amc23, gsm8k test) holds is dropped. A benchmark that cannot be
loaded stops the build: an unchecked pool is not the paper's pool.

The sources come from the hub, or from a folder holding ``metamath``, ``mathinstruct``, ``mmos`` and
``openmath`` as ``.jsonl`` or ``.parquet`` files with the hub's columns: ``task_args: {sources_dir: PATH}``,
else ``DATA_DIR/paper-pool/`` when it exists. Nothing else is ever substituted: a source that cannot be
read stops the build with one line naming the four sources and both ways to give local copies.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from harness.eval.tasks import TaskError, read_rows, task_data_dir
from harness.grading.extract import last_boxed
from harness.training.split_guard import benchmark_fingerprints, fingerprint

LOCAL_FOLDER = "paper-pool"
ANSWER_IS = re.compile(r"[Tt]he answer is:?")
CHAT_WRAPPER = re.compile(r"^\s*<\|user\|>\s*|\s*<\|assistant\|>\s*$")


def answer_after_phrase(text: str) -> str | None:
    """What follows the last "The answer is[:]" on its line, without a closing full stop."""
    found = list(ANSWER_IS.finditer(text))
    if not found:
        return None
    answer = text[found[-1].end():].strip().split("\n", 1)[0].strip().removesuffix(".").strip()
    return answer or None


@dataclass(frozen=True)
class Source:
    name: str
    hub: str
    columns: tuple[str, ...]
    to_query: Callable[[dict], tuple[str, str | None] | None]  # (question, gold or None); None: skip the row
    paper_count: int  # unique queries v1's seed data took from it


def _metamath(row: dict):
    return row["query"], answer_after_phrase(row["response"])


def _mathinstruct(row: dict):
    if "aqu" in row["source"].lower():
        return None
    return row["instruction"], answer_after_phrase(row["output"])


def _mmos(row: dict):
    return CHAT_WRAPPER.sub("", row["prompt"]), last_boxed(row["completion"])


def _openmath(row: dict):
    gold = row["expected_answer"]
    return row["question"], None if gold is None or str(gold).strip() == "" else str(gold).strip()


SOURCES = (
    Source("metamath", "meta-math/MetaMathQA", ("query", "response"), _metamath, 90_823),
    Source("mathinstruct", "TIGER-Lab/MathInstruct", ("source", "instruction", "output"), _mathinstruct, 24_246),
    Source("mmos", "cyzhh/MMOS", ("prompt", "completion"), _mmos, 2_720),
    Source("openmath", "nvidia/OpenMathInstruct-1", ("question", "expected_answer"), _openmath, 1_485),
)


def _how_to_fix(data_dir) -> str:
    files = ", ".join(f"{source.name}.jsonl" for source in SOURCES)
    folder = task_data_dir(data_dir)
    where = f"{folder / LOCAL_FOLDER}" if folder else f"DATA_DIR/{LOCAL_FOLDER}"
    return (f"the pool needs all four of {', '.join(s.hub for s in SOURCES)}; for local copies put {files} "
            f"(or .parquet, the hub's columns) in {where} or pass task_args sources_dir: PATH")


def _local_file(folder: Path, source: Source, data_dir) -> Path:
    for suffix in (".jsonl", ".parquet"):
        if (folder / f"{source.name}{suffix}").is_file():
            return folder / f"{source.name}{suffix}"
    raise TaskError(f"paper-pool: {folder} has no {source.name}.jsonl or .parquet ({source.hub}); {_how_to_fix(data_dir)}")


def _hub_rows(source: Source, data_dir) -> Iterable[dict]:
    """The source's rows, read as the pool is built: OpenMathInstruct-1 alone has 1.8M (many per question)."""
    try:
        import datasets

        return datasets.load_dataset(source.hub, split="train").select_columns(list(source.columns))
    except Exception as exc:  # noqa: BLE001 - offline, missing, renamed: the same advice
        raise TaskError(f"paper-pool: could not load {source.name} ({source.hub}) from the Hugging Face hub "
                        f"({type(exc).__name__}); {_how_to_fix(data_dir)}") from None


def source_rows(sources_dir: str | None, data_dir) -> dict[str, Iterable[dict]]:
    """Each source's raw rows: from ``sources_dir``, else DATA_DIR/paper-pool/ when it exists, else the hub."""
    folder = Path(sources_dir) if sources_dir else None
    if folder is None and (data := task_data_dir(data_dir)) is not None and (data / LOCAL_FOLDER).is_dir():
        folder = data / LOCAL_FOLDER
    if folder is not None and not folder.is_dir():
        raise TaskError(f"paper-pool: sources_dir {folder} is not a folder; {_how_to_fix(data_dir)}")
    if folder is None:
        return {source.name: _hub_rows(source, data_dir) for source in SOURCES}
    return {source.name: read_rows(_local_file(folder, source, data_dir)) for source in SOURCES}


def build_pool(rows_by_source: dict[str, Iterable[dict]], data_dir) -> tuple[list[dict], dict[str, dict[str, int]]]:
    """(pool rows: id, question, answer, source; per source: rows read, kept, no gold, duplicates, benchmark)."""
    benchmarks, unchecked = benchmark_fingerprints(data_dir)
    if unchecked:
        raise TaskError(f"paper-pool: cannot deduplicate against {', '.join(unchecked)} (no data); pass --data-dir "
                        "with their files or make the hub reachable")
    held_out = frozenset().union(*benchmarks.values())
    seen, pool, counts = set(), [], {}
    for source in SOURCES:
        tally = counts[source.name] = {"rows": 0, "kept": 0, "no_gold": 0, "duplicate": 0, "benchmark": 0}
        for index, row in enumerate(rows_by_source[source.name]):
            tally["rows"] += 1
            try:
                query = source.to_query(row)
            except KeyError as exc:
                raise TaskError(f"paper-pool: {source.name} row {index + 1} has no column {exc} (the hub's columns: "
                                f"{', '.join(source.columns)})") from None
            if query is None or query[1] is None or not query[0].strip():
                tally["no_gold"] += 1
                continue
            key = fingerprint(query[0])
            if key in held_out:
                tally["benchmark"] += 1
            elif key in seen:
                tally["duplicate"] += 1
            else:
                seen.add(key)
                tally["kept"] += 1
                pool.append({"id": f"{source.name}-{index}", "question": query[0].strip(), "answer": query[1],
                             "source": source.name})
    return pool, counts


def generate(split: str = "train", sources_dir: str | None = None, data_dir: str | None = None) -> list[dict]:
    """Rows for ``tasks/paper-pool.toml`` (a training pool: ``split`` can only be ``train``)."""
    if split != "train":
        raise TaskError(f"paper-pool: only a train split exists (got {split!r})")
    pool, counts = build_pool(source_rows(sources_dir, data_dir), data_dir)
    kept = ", ".join(f"{s.name} {counts[s.name]['kept']:,} (paper {s.paper_count:,})" for s in SOURCES)
    dropped = sum(tally["benchmark"] for tally in counts.values())
    print(f"paper-pool: {len(pool):,} unique queries: {kept}; {dropped:,} dropped for a benchmark question", file=sys.stderr)
    return pool
