"""Reports over run folders: a markdown table and PNG plots comparing runs side by side."""

from __future__ import annotations

import ast
import json
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from tinyact.errors import ConfigError
from tinyact import jsonl
from tinyact.eval.runner import CONFIG, RESULTS, TRAJECTORIES, Result, RunSummary, load_results, summarize

__all__ = ["find_runs", "k_comparison", "load_run", "load_summary", "make_report", "markdown_table", "calls_name",
           "tool_use"]


def find_runs(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Run folders among ``paths``: each path that holds a config.json, or its
    subfolders (one level down) that do.

    Raises:
        ConfigError: A path holds no run at all.
    """
    runs: list[Path] = []
    for p in map(Path, paths):
        if (p / CONFIG).is_file():
            runs.append(p)
            continue
        subs = sorted(d for d in p.iterdir() if (d / CONFIG).is_file()) if p.is_dir() else []
        if not subs:
            raise ConfigError(f"no run found in {p} (expected {CONFIG} there or one level down)")
        runs.extend(subs)
    return runs


def load_run(run_dir: str | os.PathLike[str]) -> tuple[RunSummary, list[Result]]:
    """A run's summary, recomputed from its results (so unfinished runs count too), and the results."""
    run = Path(run_dir)
    config = json.loads((run / CONFIG).read_text(encoding="utf-8"))
    results = load_results(run)
    return summarize(results, config), results


def load_summary(run_dir: str | os.PathLike[str]) -> RunSummary:
    """The summary of a run, recomputed from its results (so unfinished runs count too)."""
    return load_run(run_dir)[0]


def calls_name(code: str, name: str) -> bool:
    """Whether ``code`` calls ``name(...)``; code that does not parse is searched for the text ``name(``."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return f"{name}(" in code
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name for n in ast.walk(tree))


def tool_use(run_dir: str | os.PathLike[str], name: str, results: Sequence[Result]) -> float | None:
    """The share of ``results`` whose agent trajectory runs code that calls the tool ``name`` (e.g. how many
    HotpotQA answers searched at all); None when the run kept no trajectories (a CoT run)."""
    path = Path(run_dir) / TRAJECTORIES
    wanted = {r.prediction.trajectory_id for r in results if r.prediction.trajectory_id}
    if not wanted or not path.is_file():
        return None
    called = {t["id"] for t in jsonl.iter_lines(path) if t.get("id") in wanted
              and any(calls_name(s.get("action", {}).get("code", ""), name) for s in t.get("steps", []))}
    return sum(r.prediction.trajectory_id in called for r in results) / len(results)


def _label(run: Path, s: RunSummary) -> str:
    return run.name or f"{s.method}-{s.benchmark}"


def markdown_table(runs: Sequence[tuple[Path, RunSummary]]) -> str:
    """A markdown table, one row per run."""
    head = (
        "| run | method | model | k | benchmark | n | accuracy | metric | mean F1 | mean steps "
        "| mean tokens | s/question | wall min | format errors |"
    )
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for run, s in runs:
        n = f"{s.n}" if s.n_expected in (None, s.n) else f"{s.n}/{s.n_expected}"
        f1 = "" if s.mean_f1 is None else f"{s.mean_f1:.3f}"
        rows.append(
            f"| {_label(run, s)} | {s.method} | {s.model} | {s.samples} | {s.benchmark}:{s.split} | {n} "
            f"| {s.accuracy:.3f} | {s.metric} | {f1} | {s.mean_steps:.2f} | {s.mean_tokens:.0f} "
            f"| {s.seconds_per_question:.2f} | {s.wall_seconds / 60:.1f} | {s.format_error_rate:.3f} |"
        )
    return "\n".join(rows) + "\n"


def _plot_by_benchmark(runs: Sequence[tuple[Path, RunSummary]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benchmarks = sorted({s.benchmark for _, s in runs})
    keys = [(f"{s.method} k={s.samples} {s.model}".strip(), s.benchmark) for _, s in runs]
    by_run = len(set(keys)) < len(keys)  # two runs would share a bar: name bars by run folder
    series: dict[str, dict[str, float]] = defaultdict(dict)
    for (run, s), (key, bench) in zip(runs, keys, strict=True):
        series[_label(run, s) if by_run else key][bench] = s.accuracy
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(benchmarks) + 2), 4))
    for i, (name, accs) in enumerate(sorted(series.items())):
        xs = [b + i * width - 0.4 + width / 2 for b in range(len(benchmarks))]
        present = [b for b in benchmarks if b in accs]
        bars = ax.bar([xs[benchmarks.index(b)] for b in present], [accs[b] for b in present], width, label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(range(len(benchmarks)), benchmarks)
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.set_title("Accuracy by method and benchmark")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def k_comparison(runs: Sequence[tuple[RunSummary, Sequence[Result]]]) -> list[dict]:
    """Accuracy against k, per benchmark, method and model, on the questions that every
    run of the group answered: a k=8 run over 8 questions is compared with its k=1 run
    on those same 8, not on all 50. Groups with a single k are left out.

    Returns:
        One dict per group: benchmark, method, model, n (shared questions) and
        accuracy {k: fraction}; when two runs share a k, the later one counts.
    """
    groups: dict[tuple[str, str, str], list[tuple[int, dict[str, bool]]]] = defaultdict(list)
    for s, results in runs:
        correct = {r.id: r.score.correct for r in results}
        groups[(s.benchmark, s.method, s.model)].append((s.samples, correct))
    rows = []
    for (benchmark, method, model), members in sorted(groups.items()):
        if len({k for k, _ in members}) < 2:
            continue
        shared = set.intersection(*(set(c) for _, c in members))
        if not shared:
            continue
        accuracy = {k: sum(c[q] for q in shared) / len(shared) for k, c in members}
        rows.append({"benchmark": benchmark, "method": method, "model": model, "n": len(shared),
                     "accuracy": dict(sorted(accuracy.items()))})
    return rows


def _k_table(rows: list[dict]) -> str:
    ks = sorted({k for r in rows for k in r["accuracy"]})
    head = "| benchmark | method | model | shared questions | " + " | ".join(f"k={k}" for k in ks) + " |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        cells = [f"{r['accuracy'][k]:.3f}" if k in r["accuracy"] else "" for k in ks]
        lines.append(f"| {r['benchmark']} | {r['method']} | {r['model']} | {r['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _plot_vs_k(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for r in rows:
        ks = list(r["accuracy"])
        ax.plot(ks, [r["accuracy"][k] for k in ks], marker="o",
                label=f"{r['benchmark']} / {r['method']} ({r['n']} shared q)")
    ks_all = sorted({k for r in rows for k in r["accuracy"]})
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks_all, [str(k) for k in ks_all])
    ax.set_xlabel("samples k")
    ax.set_ylabel("accuracy on the questions all k answered")
    ax.set_ylim(0, 1)
    ax.set_title("Accuracy vs k")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def make_report(run_dirs: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str]) -> Path:
    """Write ``report.md`` and PNG plots comparing runs.

    Plots: ``accuracy_by_benchmark.png`` (grouped bars, one group per
    benchmark, one bar per method/k/model) always; ``accuracy_vs_k.png`` (one
    line per benchmark/method/model, on the questions all its runs share, see
    `k_comparison`) when such a group was run with more than one k.

    Args:
        run_dirs: Run folders, or folders holding run folders.
        out_dir: Where to write the report (created if needed).

    Returns:
        The path of ``report.md``.

    Example:
        >>> make_report(["runs/gsm-cot", "runs/gsm-agent"], "runs/report")  # doctest: +SKIP
    """
    loaded = [(r, *load_run(r)) for r in find_runs(run_dirs)]
    runs = [(r, s) for r, s, _ in loaded]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _plot_by_benchmark(runs, out / "accuracy_by_benchmark.png")
    plots = ["accuracy_by_benchmark.png"]
    k_rows = k_comparison([(s, results) for _, s, results in loaded])
    if k_rows:
        _plot_vs_k(k_rows, out / "accuracy_vs_k.png")
        plots.append("accuracy_vs_k.png")
    metrics = sorted({s.metric for _, s in runs})
    text = [
        "# Evaluation report",
        "",
        markdown_table(runs),
        f"Accuracy metrics: {', '.join(metrics)} (em: normalized exact match; "
        "math_equiv: symbolic/numeric equivalence; llm_judge: an LLM judge). "
        f"Results read from {len(runs)} run folder(s) ({RESULTS}).",
        "",
        *(["## Accuracy vs k, on the questions every k answered", "", _k_table(k_rows)] if k_rows else []),
        *[f"![{p[:-4]}]({p})" for p in plots],
        "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(text), encoding="utf-8")
    return path
