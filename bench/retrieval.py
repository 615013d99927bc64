"""Retrieval benchmark on the HotpotQA-distractor corpus (10,785 passages, gold titles known).

For BM25, dense and hybrid: recall@1/5/10 of the gold paragraphs with the question as
the query (the mean fraction of a question's gold paragraphs in the top k, and how
often both are there), index build time, and query latency p50/p99, one query at a
time and in batches.

    .venv/bin/python -m tinyact.bench.retrieval [--plot bench/results/retrieval.png]

The hybrid index is cached in --index (rebuilt when missing or with --rebuild).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

# (row label, backend, search options): "hybrid-rrf" is plain fusion, "hybrid" adds title links.
RUNS = (
    ("bm25", "bm25", {}),
    ("dense", "dense", {}),
    ("hybrid-rrf", "hybrid", {"link_seeds": 0}),
    ("hybrid", "hybrid", {}),
)
KS = (1, 5, 10)
REPO = Path(__file__).resolve().parents[1]


def shared_data() -> Path:
    return Path(os.environ.get("TINYACT_SHARED_DATA") or REPO.parent / "shared" / "data")


def load_questions(folder: Path) -> list[dict[str, Any]]:
    questions = []
    for file in sorted(folder.glob("*.jsonl")):
        with file.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    record = json.loads(line)
                    gold = list(dict.fromkeys(record["supporting_facts"]["title"]))
                    questions.append({"question": record["question"], "gold": gold})
    return questions


def recall(hits: list[list[Any]], questions: list[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for k in KS:
        fractions, both = [], []
        for q, h in zip(questions, hits, strict=True):
            titles = {x.title for x in h[:k]}
            found = sum(t in titles for t in q["gold"])
            fractions.append(found / len(q["gold"]))
            both.append(found == len(q["gold"]))
        out[f"r@{k}"] = statistics.fmean(fractions)
        out[f"both@{k}"] = statistics.fmean(both)
    return out


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def latency(index: Any, queries: list[str], backend: str, batch: int) -> dict[str, float]:
    index.search(queries[0], 10, backend=backend)  # warm-up (loads the encoder)
    single, cpu = [], []
    for q in queries:
        t, c = time.perf_counter(), time.process_time()
        index.search(q, 10, backend=backend)
        single.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    batched = []
    for i in range(0, len(queries) - batch + 1, batch):
        t = time.perf_counter()
        index.batch_search(queries[i : i + batch], 10, backend=backend)
        batched.append((time.perf_counter() - t) * 1000)
    return {
        "p50_ms": percentile(single, 50),
        "p99_ms": percentile(single, 99),
        "cpu_p50_ms": percentile(cpu, 50),  # CPU time of this process: what the query costs without contention
        "batch_ms_per_q": statistics.median(batched) / batch if batched else float("nan"),
    }


def _threads() -> int:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return 0
    return int(torch.get_num_threads())


def plot(rows: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    for backend, r in rows.items():
        ax.plot(KS, [r[f"r@{k}"] for k in KS], marker="o", label=backend)
    ax.set_xlabel("k")
    ax.set_ylabel("gold-paragraph recall@k")
    ax.set_title("HotpotQA-distractor, 10,785 passages")
    ax.set_xticks(KS)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    from tinyact.tools.retrieval import RetrievalConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="HotpotQA folder (default ../shared/data/hotpotqa-distractor)")
    parser.add_argument("--index", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "tinyact-bench-hotpot")
    parser.add_argument("--model", default=os.environ.get("TINYACT_EMBED_MODEL", "minilm-l6"))
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--latency-queries", type=int, default=300)
    parser.add_argument("--batch", type=int, default=32)
    defaults = RetrievalConfig()
    parser.add_argument("--rrf-k", type=int, default=defaults.rrf_k)
    parser.add_argument("--dense-weight", type=float, default=defaults.dense_weight)
    parser.add_argument("--bm25-weight", type=float, default=defaults.bm25_weight)
    parser.add_argument("--fusion-depth", type=int, default=defaults.fusion_depth)
    parser.add_argument("--link-seeds", type=int, default=defaults.link_seeds)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--plot", type=Path, default=REPO / "bench" / "results" / "retrieval.png")
    parser.add_argument("--json", type=Path, default=None, help="Also write the numbers here.")
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    from tinyact.tools.retrieval import Index, build_index

    data = args.data or shared_data() / "hotpotqa-distractor"
    if not data.is_dir():
        raise SystemExit(f"HotpotQA data not found at {data} (set TINYACT_SHARED_DATA or --data)")
    console = Console(width=160)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    build_s: dict[str, float] = {}
    bm25_dir = args.index.with_name(args.index.name + "-bm25")
    t = time.perf_counter()
    build_index(data, bm25_dir, backend="bm25", overwrite=True, progress=False)
    build_s["bm25"] = time.perf_counter() - t
    if args.rebuild or not (args.index / "manifest.json").is_file():
        build_index(data, args.index, backend="hybrid", model=args.model, overwrite=True)
    manifest = json.loads((args.index / "manifest.json").read_text())
    build_s["hybrid"] = manifest["build_seconds"]
    build_s["dense"] = build_s["hybrid"] - build_s["bm25"]  # the hybrid build is dense + BM25
    options = {"rrf_k": args.rrf_k, "dense_weight": args.dense_weight, "bm25_weight": args.bm25_weight,
               "fusion_depth": args.fusion_depth, "link_seeds": args.link_seeds}
    index = Index.load(args.index, **options)
    questions = load_questions(data)
    queries = [q["question"] for q in questions]
    console.print(f"{len(index)} passages, {len(questions)} questions; model {manifest['model']['name']}; "
                  f"rrf_k={index.config.rrf_k} weights dense/bm25={index.config.dense_weight}/{index.config.bm25_weight} "
                  f"depth={index.config.fusion_depth} link_seeds={index.config.link_seeds}; "
                  f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; torch threads {_threads()}")
    rows: dict[str, dict[str, float]] = {}
    for label, backend, extra in RUNS:
        run = Index.load(args.index, embedder=index.embedder, **{**options, **extra})  # one encoder for all
        hits = run.batch_search(queries, 10, backend=backend)
        rows[label] = {**recall(hits, questions), "build_s": build_s[backend],
                       **latency(run, queries[: args.latency_queries], backend, args.batch)}
    table = Table(title="Retrieval on HotpotQA-distractor (question as query)")
    for col in ("backend", "R@1", "R@5", "R@10", "both@5", "both@10", "build s", "p50 ms", "p99 ms", "p50 CPU ms",
                f"batch{args.batch} ms/q"):
        table.add_column(col, justify="right" if col != "backend" else "left")
    for backend, r in rows.items():
        table.add_row(backend, *(f"{r[c]:.3f}" for c in ("r@1", "r@5", "r@10", "both@5", "both@10")),
                      f"{r['build_s']:.1f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", f"{r['cpu_p50_ms']:.2f}",
                      f"{r['batch_ms_per_q']:.2f}")
    console.print(table)
    plot(rows, args.plot)
    console.print(f"plot: {args.plot}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
