"""The paper's Table 2 from evaluation run folders: rows = models, columns = benchmarks + average.

Each ``--row "LABEL=DIR"`` names a folder holding one ``tinyact eval`` run folder per benchmark
(``DIR/gsm-hard``, ``DIR/math500``, ``DIR/hotpotqa-distractor``). Numbers are recomputed from each run's
results (``eval.report.load_run``), so runs still being written count with what they have: a cell with fewer
than the expected questions shows ``acc (n/expected)`` and is left out of the row's average (marked ``*``).
HotpotQA shows EM with F1 beside it; the average is over EM. Per row: questions per cell, mean completion
tokens per answer, wall minutes (the runs' busy time, summed). ``--first N`` counts only each benchmark's first
N questions, so rows run to different ``--limit`` s compare on the same questions.

The teacher section (``--teacher "LABEL=WORKDIR"``, repeatable; ``--cot WORKDIR``) compares the teacher's
trajectories (``trajectories.jsonl``, graded as ``distill/filtering.py`` does) per task source on the question
ids every listed row shares, e.g. with vs without first-thought prefixes; ``--cot`` adds the teacher's CoT
answers (``WORKDIR/cot.jsonl``, field ``correct``) when that file exists.

Run: python -m tinyact.bench.table2 --row "qwen2.5-coder-0.5b untuned=runs/table2/untuned-0.5b" ...
        [--teacher "with prefix=runs/distill-paper-cpu" --teacher "without prefix=runs/distill-paper-cpu-noprefix"]
        [--cot runs/distill-paper-cpu] [--out bench/results/table2.md]      (writes table2.md, .png, .json)
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tinyact.eval.report import load_run, tool_use
from tinyact.eval.runner import CONFIG, Result, RunSummary, summarize

BENCHMARKS = ("gsm-hard", "math500", "hotpotqa-distractor")
TITLES = {"gsm-hard": "GSM-Hard", "math500": "MATH-500", "hotpotqa-distractor": "HotpotQA-distractor",
          "hotpotqa": "HotpotQA", "math:train": "MATH L4-5", "math:train-medium": "MATH L2-3",
          "hotpotqa-distractor:train": "HotpotQA", "hotpotqa:train": "HotpotQA"}
SOURCE_ORDER = ("math:train", "math:train-medium", "hotpotqa-distractor:train", "hotpotqa:train")


@dataclass
class Cell:
    """One model on one benchmark."""

    summary: RunSummary
    results: list[Result]
    expected: int
    searched: float | None = None
    """The share of answers whose code called ``search()`` (agent runs; None for CoT)."""

    @property
    def complete(self) -> bool:
        return self.summary.n >= self.expected


@dataclass
class Row:
    label: str
    folder: Path
    cells: dict[str, Cell | None] = field(default_factory=dict)
    """Benchmark -> its run, None when the folder has no run for it."""

    def average(self) -> tuple[float | None, list[str]]:
        """Mean accuracy (EM for QA) over the complete cells, and the benchmarks left out."""
        done = [c.summary.accuracy for c in self.cells.values() if c is not None and c.complete]
        left_out = [b for b, c in self.cells.items() if c is None or not c.complete]
        return (sum(done) / len(done) if done else None), left_out

    @property
    def answers(self) -> list[Result]:
        return [r for c in self.cells.values() if c is not None for r in c.results]

    @property
    def mean_tokens(self) -> float | None:
        answers = self.answers
        return sum(r.prediction.tokens for r in answers) / len(answers) if answers else None

    @property
    def wall_minutes(self) -> float:
        return sum(c.summary.wall_seconds for c in self.cells.values() if c is not None) / 60


def parse_spec(spec: str) -> tuple[str, Path]:
    """``"LABEL=PATH"`` -> (label, path); the last ``=`` splits, so labels may hold one (``k=8``)."""
    label, sep, path = spec.rpartition("=")
    if not sep or not label.strip() or not path.strip():
        raise SystemExit(f"expected LABEL=PATH, got {spec!r}")
    return label.strip(), Path(path.strip())


def first_ids(benchmark: str, split: str, n: int) -> set[str]:
    """The ids of a benchmark's first ``n`` questions (the order ``tinyact eval run --limit`` takes them in)."""
    from tinyact.eval.datasets import load_benchmark

    return {q.id for q in load_benchmark(benchmark, split or None, limit=n).questions}


def load_rows(specs: Sequence[str], benchmarks: Sequence[str] = BENCHMARKS, expected: int | None = None,
              first: int | None = None) -> list[Row]:
    """The rows of the table: each spec's run folders, one per benchmark (missing ones are None).

    ``expected``: questions a complete cell has (default: each run's own ``n_expected``). ``first``: count
    only the answers to each benchmark's first ``first`` questions, so rows run to different ``--limit`` s
    compare on the same questions (a cell is then complete with ``first`` answers)."""
    ids: dict[tuple[str, str], set[str]] = {}
    rows = []
    for spec in specs:
        label, folder = parse_spec(spec)
        if not folder.is_dir():
            raise SystemExit(f"{label}: {folder} is not a folder")
        row = Row(label, folder)
        for b in benchmarks:
            run = folder / b
            if not (run / CONFIG).is_file():
                row.cells[b] = None
                continue
            summary, results = load_run(run)
            if first is not None:  # the summary holds every setting summarize reads: no second config read
                key = (b, summary.split)
                if key not in ids:
                    ids[key] = first_ids(summary.benchmark or b, summary.split, first)
                results = [r for r in results if r.id in ids[key]]
                summary = summarize(results, summary.model_dump() | {"n_expected": first})
            # a run with no answer yet (killed in its first batch) has no accuracy to show: a missing cell
            row.cells[b] = Cell(summary, results, first or expected or summary.n_expected or summary.n,
                                tool_use(run, "search", results)) if results else None
        rows.append(row)
    return rows


def _is_qa(rows: Sequence[Row], bench: str) -> bool:
    return any(c is not None and c.summary.mean_f1 is not None for c in (r.cells.get(bench) for r in rows))


def _acc(cell: Cell | None, value: float | None = None) -> str:
    if cell is None:
        return "—"
    v = cell.summary.accuracy if value is None else value
    return f"{v:.3f}" if cell.complete else f"{v:.3f} ({cell.summary.n}/{cell.expected})"


def table_rows(rows: Sequence[Row], benchmarks: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the model table, as text (shared by the markdown and the terminal)."""
    header = ["model"]
    for b in benchmarks:
        if _is_qa(rows, b):
            header += [f"{TITLES.get(b, b)} EM", "F1", "searched"]
        else:
            header.append(TITLES.get(b, b))
    header += ["average", "n", "tokens/answer", "wall min"]
    body = []
    for row in rows:
        cells = [row.label]
        for b in benchmarks:
            c = row.cells[b]
            cells.append(_acc(c))
            if _is_qa(rows, b):
                f1 = None if c is None else c.summary.mean_f1
                cells.append("—" if c is None or f1 is None else _acc(c, f1))
                cells.append("—" if c is None or c.searched is None else f"{c.searched:.0%}")
        avg, left_out = row.average()
        cells.append("—" if avg is None else f"{avg:.3f}" + ("*" if left_out else ""))
        cells.append(" / ".join("—" if row.cells[b] is None else str(row.cells[b].summary.n)  # type: ignore[union-attr]
                                for b in benchmarks))
        cells.append("—" if row.mean_tokens is None else f"{row.mean_tokens:.0f}")
        cells.append(f"{row.wall_minutes:.1f}")
        body.append(cells)
    return header, body


# ------------------------------------------------------------------ teacher section
def _source(qid: str, source: str | None) -> str:
    """A training question's task source: recorded, else from its id (``<benchmark>-<split>-<id>``)."""
    if source:
        return source
    for s in sorted(SOURCE_ORDER, key=len, reverse=True):
        if qid.startswith(s.replace(":", "-") + "-"):
            return s
    return "other"


def teacher_outcomes(workdir: Path) -> dict[str, tuple[str, bool]]:
    """question id -> (task source, correct) of a teacher's trajectories (the first run of each id),
    graded as the filter stage grades them."""
    from tinyact.distill.collect import read_trajectories
    from tinyact.distill.filtering import is_correct

    path = workdir / "trajectories.jsonl"
    if not path.is_file():
        raise SystemExit(f"no teacher trajectories at {path}")
    out: dict[str, tuple[str, bool]] = {}
    for t in read_trajectories(path):
        qid = str(t.metadata.get("question_id", t.id))
        out.setdefault(qid, (_source(qid, t.metadata.get("source")), is_correct(t)))
    return out


def cot_outcomes(workdir: Path) -> dict[str, tuple[str, bool]] | None:
    """question id -> (task source, correct) of the teacher's CoT answers (``cot.jsonl``); None without it."""
    from tinyact import jsonl

    path = workdir / "cot.jsonl"
    if not path.is_file():
        return None
    out: dict[str, tuple[str, bool]] = {}
    for rec in jsonl.iter_lines(path):
        qid = str(rec.get("question_id", rec.get("id", "")))
        if qid and "correct" in rec:
            source = rec.get("source") or (rec.get("metadata") or {}).get("source")
            out.setdefault(qid, (_source(qid, source), bool(rec["correct"])))
    return out


def teacher_table(rows: Sequence[tuple[str, dict[str, tuple[str, bool]]]]) -> tuple[list[str], list[list[str]], int]:
    """Accuracy per task source on the ids every row has: header, cells, and how many ids are shared."""
    shared = set.intersection(*(set(o) for _, o in rows)) if rows else set()
    first = rows[0][1] if rows else {}
    sources = sorted({first[q][0] for q in shared},
                     key=lambda s: (SOURCE_ORDER.index(s) if s in SOURCE_ORDER else len(SOURCE_ORDER), s))
    header = ["teacher", *(TITLES.get(s, s) for s in sources), "all", "in file"]
    body = []
    for label, outcomes in rows:
        cells = [label]
        for s in [*sources, None]:
            ids = [q for q in shared if s is None or first[q][0] == s]
            right = sum(outcomes[q][1] for q in ids)
            cells.append(f"{right / len(ids):.3f} ({right}/{len(ids)})" if ids else "—")
        cells.append(str(len(outcomes)))
        body.append(cells)
    return header, body, len(shared)


# ------------------------------------------------------------------ output
def _markdown(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines) + "\n"


def _rich(title: str, header: list[str], body: list[list[str]]) -> Table:
    table = Table(title=title)
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right")
    for cells in body:
        table.add_row(*cells)
    return table


def plot(rows: Sequence[Row], benchmarks: Sequence[str], path: Path) -> None:
    """Grouped bars: one group per benchmark (and the average), one bar per row; partial cells hatched."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [*benchmarks, "average"]
    width, top = 0.8 / max(1, len(rows)), 0.0
    fig, ax = plt.subplots(figsize=(max(6.0, 1.8 * len(groups) + 2) + 4, 4.2))  # + the legend on the right
    colors = plt.get_cmap("tab10" if len(rows) <= 10 else "tab20")  # tab10 would repeat a colour past 10 rows
    for i, row in enumerate(rows):
        label: str | None = row.label  # on the row's first bar only
        for g, bench in enumerate(groups):
            if bench == "average":
                value, partial = row.average()[0], bool(row.average()[1])
            else:
                cell = row.cells[bench]
                value, partial = (None, False) if cell is None else (cell.summary.accuracy, not cell.complete)
            if value is None:
                continue
            top = max(top, value)
            x = g - 0.4 + width * (i + 0.5)
            bar = ax.bar(x, value, width, color=colors(i % colors.N), hatch="//" if partial else None,
                         alpha=0.6 if partial else 1, label=label)
            ax.bar_label(bar, fmt="%.2f", fontsize=7)
            label = None
    ax.set_xticks(range(len(groups)), [TITLES.get(b, b) + (" (EM)" if b.startswith("hotpotqa") else "") for b in groups])
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, min(1.0, max(0.25, top * 1.3)))  # small models score low: keep the bars readable
    ax.set_title("Table 2: held-out accuracy (hatched: unfinished run)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, never over them
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(rows: list[Row], benchmarks: Sequence[str], teachers: list[tuple[str, dict[str, tuple[str, bool]]]],
           out: Path | None, console: Console | None = None, first: int | None = None) -> dict[str, Any]:
    """Print the tables; with ``out`` write the markdown there, the PNG and a JSON of the numbers beside it.
    ``first``: the rows were loaded with ``load_rows(first=...)`` (said in the caption)."""
    console = console or Console()
    text: list[str] = ["# Table 2" + (f" on each benchmark's first {first} questions" if first else ""), ""]
    data: dict[str, Any] = {"first": first, "rows": [{
        "label": r.label, "folder": str(r.folder), "average": r.average()[0], "left_out": r.average()[1],
        "mean_tokens": r.mean_tokens, "wall_minutes": r.wall_minutes,
        "cells": {b: None if c is None else {"accuracy": c.summary.accuracy, "f1": c.summary.mean_f1,
                                             "n": c.summary.n, "expected": c.expected, "model": c.summary.model,
                                             "searched": c.searched}
                  for b, c in r.cells.items()}} for r in rows]}
    if rows:
        header, body = table_rows(rows, benchmarks)
        console.print(_rich("Table 2", header, body))
        text += [_markdown(header, body),
                 "Accuracy (HotpotQA: exact match, token F1 beside it; searched: the answers whose code called "
                 "`search()`, agents only); average over the benchmarks (EM for QA). "
                 "n: questions per benchmark; tokens/answer: mean completion tokens; wall min: the runs' busy "
                 "time. A cell `acc (n/expected)` is an unfinished run."]
        notes = [f"{r.label}: {', '.join(lo)}" for r in rows if (lo := r.average()[1])]
        if notes:
            text.append(f"\n\\* averaged without unfinished or missing cells ({'; '.join(notes)}).")
    if teachers:
        t_header, t_body, shared = teacher_table(teachers)
        console.print(_rich(f"Teacher accuracy on the {shared} training questions every row has", t_header, t_body))
        text += ["", "## Teacher", "", f"Accuracy on the {shared} training question ids every row shares "
                 "(graded as the filter stage grades; `in file`: questions answered in all).", "",
                 _markdown(t_header, t_body)]
        data["teacher"] = {"shared": shared, "header": t_header, "rows": t_body}
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        png = out.with_suffix(".png")
        if rows:
            plot(rows, benchmarks, png)
            text += ["", f"![Table 2]({png.name})", ""]
        out.write_text("\n".join(text), encoding="utf-8")
        out.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        console.print(f"written: {out}, {png.name}, {out.with_suffix('.json').name}")
    return data


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--row", action="append", default=[], help="LABEL=DIR of run folders, one per benchmark.")
    ap.add_argument("--benchmarks", default=",".join(BENCHMARKS), help="Comma-separated benchmark folder names.")
    ap.add_argument("--n", type=int, default=None, help="Questions of a complete cell (default: each run's own).")
    ap.add_argument("--first", type=int, default=None,
                    help="Count only each benchmark's first N questions (rows run to different limits, compared).")
    ap.add_argument("--teacher", action="append", default=[], help="LABEL=WORKDIR of a teacher collection.")
    ap.add_argument("--cot", type=Path, default=None, help="WORKDIR whose cot.jsonl adds a teacher CoT row.")
    ap.add_argument("--out", type=Path, default=None, help="Markdown file (PNG and JSON written beside it).")
    args = ap.parse_args(argv)
    if not args.row and not args.teacher:
        ap.error("give at least one --row (or --teacher)")
    benchmarks = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
    if args.first is not None and args.first < 1:
        ap.error(f"--first must be at least 1, got {args.first}")
    rows = load_rows(args.row, benchmarks, args.n, args.first)
    teachers = [(label, teacher_outcomes(path)) for label, path in map(parse_spec, args.teacher)]
    if args.cot is not None:
        cot = cot_outcomes(args.cot)
        if cot is not None:
            teachers.append(("CoT answers", cot))
    report(rows, benchmarks, teachers, args.out, first=args.first)


if __name__ == "__main__":
    main()
