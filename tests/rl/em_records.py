"""E-step records made by hand, in the schema the M-step reads (eval's sample records: harness/eval/attempts.py)."""

from __future__ import annotations


def em_record(doc_id: str, prompt_ids: list[int], response_ids: list[int], loss_mask: list[int] | None = None, **fields) -> dict:
    """A rollout of query ``doc_id``: the response as model segments (mask 1) and tool segments (mask 0)."""
    segments: list[dict] = []
    for token, learned in zip(response_ids, loss_mask or [1] * len(response_ids), strict=True):
        kind = "model" if learned else "tool"
        if not segments or segments[-1]["kind"] != kind:
            segments.append({"kind": kind, "token_ids": [], "text": ""})
        segments[-1]["token_ids"].append(token)
    return {"doc_id": doc_id, "decision": "cot", "forced_tokens": 0, "prompt_ids": list(prompt_ids), "segments": segments,
            "used_code": False, **fields}
