"""The CoT-distillation baseline's data: the teacher's whole CoT answer to each training question, graded.

``generate_cot_answers`` writes ``cot.jsonl`` (resumable), one line per question:
the CoT text, the extracted answer and whether the question's own grader finds it
correct. It builds on the prefixes stage, which asked the same teacher the same
CoT prompt greedily for a few hundred tokens: a prefix row whose answer finished
is taken as is (no engine call), and one cut at its budget is continued
(``engine.generate(..., prefix=row["cot"])``) up to ``max_tokens`` in all, so no
token is generated twice. With a retriever, QA questions are asked afresh with
their top passages (the prefix rows had none). ``write_cot_sft_data`` turns the
correct answers into the student's SFT conversations, the very messages
``tinyact eval run --method cot`` shows it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tinyact import jsonl

if TYPE_CHECKING:
    from tinyact.eval.datasets import Question
    from tinyact.models.engines.base import Engine
    from tinyact.schema import Message

__all__ = ["cot_counts", "cot_sft_example", "generate_cot_answers", "question_kind", "write_cot_sft_data"]

_CLOSE = {"qa": "</answer>", "math": ""}
"""The stop string of each kind, as ``CoTSolver`` uses it (QA stops at the closing tag; math runs to the end)."""


def question_kind(question: Question) -> str:
    """"qa" for questions graded as QA, "math" for everything else (math, code tasks), as the prefixes stage asks."""
    return "qa" if question.metadata.get("grader") == "qa" else "math"


@dataclass
class _Work:
    """One question still to ask (fresh, or a prefix row to continue)."""

    question: Question
    kind: str
    messages: list[Message]
    passages: list[dict[str, str]] | None
    prefix: str | None = None
    tokens: int = 0
    seconds: float = 0.0
    origin: str = "generated"


def _same_sampling(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return {k: v for k, v in a.items() if k != "max_tokens"} == {k: v for k, v in b.items() if k != "max_tokens"}


def _from_prefix_row(row: dict[str, Any], kind: str, max_tokens: int) -> tuple[str, int, str] | None:
    """``(text, tokens, state)`` of a usable prefix row; state: "finished" (the answer ended), "spent" (cut,
    and ``max_tokens`` is no more than it had) or "continue" (cut at the budget or at a stop string, which
    the text to continue then ends with). None when the row has no CoT."""
    text, tokens = row.get("cot"), int(row.get("completion_tokens") or 0)
    if not isinstance(text, str) or not text:
        return None
    close = _CLOSE[kind]
    if close and close in text:  # generated without the stop string: what follows it is not the answer
        return text[: text.index(close) + len(close)], tokens, "finished"
    if row.get("stop"):  # ended at a stop string (the prefixes stage stops at the first blank line): it goes on
        return text + row["stop"], tokens, "spent" if tokens >= max_tokens else "continue"
    if tokens < int(row.get("sampling", {}).get("max_tokens", 0)):
        return text, tokens, "finished"
    return text, tokens, "spent" if tokens >= max_tokens else "continue"


def generate_cot_answers(
    engine: Engine,
    questions: Sequence[Question],
    out_path: str | os.PathLike[str],
    *,
    teacher: str = "",
    max_tokens: int = 1024,
    batch_size: int = 8,
    prefixes_path: str | os.PathLike[str] | None = None,
    retriever: Any = None,
    rag_k: int = 5,
    index: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Ask the teacher for a full greedy CoT answer to each question, grade it, and append it to ``out_path``.

    Resumable: questions already in ``out_path`` are skipped. Each line holds the
    id, question, kind, grader, source, prompt version, text, extracted answer,
    ``correct``, completion tokens, seconds, ``truncated`` (the budget ran out),
    ``origin`` ("prefixes": reused as is, "continued", "generated"), teacher,
    sampling, and the passages shown (None without retrieval).

    Args:
        engine: The teacher.
        questions: Training questions (``metadata["grader"]`` says how each is graded).
        out_path: The ``cot.jsonl`` file.
        teacher: The teacher's name (recorded; prefix rows are reused only when theirs matches).
        max_tokens: New tokens of a whole answer (a continued row's first part included).
        batch_size: Questions per ``engine.generate`` call.
        prefixes_path: The prefixes stage's file, whose greedy CoT rows are reused.
        retriever: QA questions are asked with their top ``rag_k`` passages (see ``eval.cot.retrieve_passages``).
        index: The retriever's folder or URL, recorded in each line.
        progress: Called ``(done, total)`` after each batch.

    Returns:
        Every line of ``out_path``.
    """
    from tinyact.eval.cot import retrieve_passages
    from tinyact.eval.prompts import COT_PROMPT_VERSION, cot_messages
    from tinyact.schema import SamplingParams

    sampling = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    teacher = teacher or getattr(engine, "model_name", "") or engine.name
    done = {r["id"] for r in jsonl.iter_lines(out_path)}
    todo = [q for q in questions if q.id not in done]
    prefix_rows = {r["id"]: r for r in jsonl.iter_lines(prefixes_path)} if prefixes_path else {}
    rag = retriever is not None
    qa = [q for q in todo if question_kind(q) == "qa"] if rag else []
    found = dict(zip((q.id for q in qa), retrieve_passages(retriever, [q.question for q in qa], rag_k)))
    count = len(questions) - len(todo)

    from tinyact.console import drain_on_interrupt

    with drain_on_interrupt("answers") as stopping, jsonl.JsonlWriter(out_path) as w:

        def write(work: _Work, text: str, tokens: int, seconds: float, truncated: bool) -> None:
            _write_answer(w, work, text, tokens, seconds, truncated, teacher=teacher, sampling=sampling,
                         rag={"index": index, "k": rag_k} if work.passages is not None else None)

        pending: list[_Work] = []
        for q in todo:
            kind = question_kind(q)
            passages = found.get(q.id)
            work = _Work(q, kind, cot_messages(q.question, kind, passages), passages)  # type: ignore[arg-type]
            row = prefix_rows.get(q.id)
            usable = (passages is None and row is not None and row.get("teacher") == teacher
                      and row.get("prompt") == f"{COT_PROMPT_VERSION}/{kind}"
                      and _same_sampling(row.get("sampling", {}), sampling.model_dump()))
            reuse = _from_prefix_row(row, kind, max_tokens) if usable else None  # type: ignore[arg-type]
            if reuse is None:
                pending.append(work)
                continue
            text, work.tokens, state = reuse
            work.seconds = float(row.get("seconds") or 0.0)  # type: ignore[union-attr]
            if state != "continue":
                work.origin = "prefixes"
                write(work, text, work.tokens, work.seconds, truncated=state == "spent")
                count += 1
            else:
                work.prefix, work.origin = text, "continued"
                pending.append(work)
        if progress:
            progress(count, len(questions))

        # one engine call per batch of questions with the same stop string and token budget
        groups: dict[tuple[str, int], list[_Work]] = {}
        for work in pending:
            groups.setdefault((work.kind, max_tokens - work.tokens), []).append(work)
        for (kind, budget), works in groups.items():
            stop = [_CLOSE[kind]] if _CLOSE[kind] else []
            for i in range(0, len(works), batch_size):
                if stopping():  # Ctrl-C: the batch in flight is saved, no new one starts
                    break
                batch = works[i : i + batch_size]
                started = time.time()
                outputs = engine.generate([b.messages for b in batch], n=1, stop=stop,
                                          sampling=sampling.model_copy(update={"max_tokens": budget}),
                                          prefix=None if all(b.prefix is None for b in batch)
                                          else [b.prefix for b in batch])
                seconds = (time.time() - started) / len(batch)
                for work, (c, *_) in zip(batch, outputs):
                    text = c.text + (c.stop or "")  # the whole answer, its closing tag included
                    tokens = work.tokens + c.completion_tokens
                    write(work, text, tokens, work.seconds + seconds,
                          truncated=c.finish_reason == "length")
                count += len(batch)
                if progress:
                    progress(count, len(questions))
    return list(jsonl.iter_lines(out_path))


def _write_answer(w: jsonl.JsonlWriter, work: _Work, text: str, tokens: int, seconds: float, truncated: bool, *,
                 teacher: str, sampling: Any, rag: dict[str, Any] | None) -> None:
    """Grade one answer with its question's grader and append its line."""
    from tinyact.distill.questions import grade
    from tinyact.eval.cot import extract_answer
    from tinyact.eval.prompts import COT_PROMPT_VERSION, RAG_PROMPT_VERSION

    q = work.question
    grader = str(q.metadata.get("grader", "qa"))
    answer = extract_answer(text, work.kind)  # type: ignore[arg-type]
    w.write({
        "id": q.id,
        "question": q.question,
        "kind": work.kind,
        "grader": grader,
        "source": q.metadata.get("source", ""),
        "prompt": f"{COT_PROMPT_VERSION}/{work.kind}" + (f"+{RAG_PROMPT_VERSION}" if work.passages is not None else ""),
        "text": text,
        "answer": answer,
        "correct": bool(grade(answer, q.answer, grader)),
        "completion_tokens": tokens,
        "seconds": round(seconds, 3),
        "truncated": truncated,
        "origin": work.origin,
        "teacher": teacher,
        "sampling": sampling.model_dump(),
        "passages": work.passages,
        "rag": rag,
    })


def cot_counts(rows: Iterable[dict[str, Any]], questions: int) -> dict[str, Any]:
    """Counts of a ``cot.jsonl``: answered, correct, truncated, by origin, with passages, and per source."""
    rows = list(rows)
    per_source: dict[str, dict[str, int]] = {}
    origins: dict[str, int] = {}
    for r in rows:
        s = per_source.setdefault(str(r.get("source", "")), {"answered": 0, "correct": 0})
        s["answered"] += 1
        s["correct"] += int(bool(r.get("correct")))
        origins[str(r.get("origin"))] = origins.get(str(r.get("origin")), 0) + 1
    return {
        "questions": questions,
        "answered": len(rows),
        "correct": sum(bool(r.get("correct")) for r in rows),
        "truncated": sum(bool(r.get("truncated")) for r in rows),
        "with_passages": sum(r.get("passages") is not None for r in rows),
        "origin": origins,
        "per_source": per_source,
    }


def cot_sft_example(row: dict[str, Any]) -> dict[str, Any]:
    """``{"id", "messages"}``: the CoT prompt exactly as ``CoTSolver`` sends it (the same passages
    for a QA question asked with them), then the teacher's answer as the assistant turn."""
    from tinyact.eval.prompts import cot_messages

    prompt = cot_messages(row["question"], row["kind"], row.get("passages"))
    return {"id": row["id"], "messages": [{"role": m.role, "content": m.content} for m in prompt]
            + [{"role": "assistant", "content": row["text"]}]}


def write_cot_sft_data(rows: Iterable[dict[str, Any]], out_path: str | os.PathLike[str]) -> int:
    """The correct answers of ``rows`` (one per question, the first) as SFT conversations in ``out_path``
    (rewritten atomically). Returns how many."""
    seen: set[str] = set()

    def keep() -> Iterable[dict[str, Any]]:
        for r in rows:
            if r.get("correct") and r["id"] not in seen:
                seen.add(r["id"])
                yield cot_sft_example(r)

    return jsonl.rewrite(out_path, keep())
