"""Self-consistency benchmark: accuracy and seconds per task for k = 1, 4, 8 on the
seeded code tasks, for each engine, in one run; the cost of k=8 relative to k=1.

Run: python -m tinyact.bench.consistency [--tasks 14] [--engines transformers llamacpp vllm]
                                            [--ks 1 4 8] [--plot bench/results/consistency.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tinyact.bench.task_runs import solve, summarize
from tinyact.console import progress_bar
from tinyact.eval.code_tasks import make_code_tasks

console = Console()


def measure(engine, ks: list[int], n_tasks: int, max_steps: int, seed: int) -> list[dict]:
    from tinyact.agents import Agent

    tasks = make_code_tasks(n_tasks, seed=seed)
    rows = []
    with progress_bar(console=console) as progress:
        for k in ks:
            agent = Agent(engine, samples=k, max_steps=max_steps, seed=seed)
            runs = solve(agent, tasks, progress, f"{engine.name} k={k}")
            rows.append({"engine": engine.name, "k": k, **summarize(runs)})
            console.log(rows[-1])  # a partial result survives a crash of a later stage
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--engines", nargs="+", default=["transformers", "llamacpp"],
                        help="transformers | vllm | llamacpp (each in turn, one run)")
    parser.add_argument("--ks", nargs="+", type=int, default=[1, 4, 8])
    parser.add_argument("--tasks", type=int, default=14)
    parser.add_argument("--max-steps", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", default=None, help="transformers weights dtype (bfloat16 is much faster for k>1 "
                                                      "on CPUs with AMX/avx512_bf16); default float32")
    parser.add_argument("--plot", default="bench/results/consistency.png")
    args = parser.parse_args()

    from tinyact.models.engines import load_engine

    rows: list[dict] = []
    for name in args.engines:
        try:
            kwargs = {"dtype": args.dtype} if args.dtype and name == "transformers" else {}
            engine = load_engine(args.model, engine=name, **kwargs)
        except ImportError as e:
            console.print(f"[yellow]skipping {name}: {e}[/]")
            continue
        rows += measure(engine, args.ks, args.tasks, args.max_steps, args.seed)
        del engine
    dtype = f", transformers in {args.dtype}" if args.dtype else ""
    table = Table(title=f"{args.model}, {args.tasks} seeded code tasks, self-consistency (T=0.4, top_p=0.8 for k>1)"
                        f"{dtype}")
    for col in ("engine", "k", "accuracy", "mean steps", "s/task (median)", "s/step (median)", "step cost vs k=1"):
        table.add_column(col, justify="left" if col == "engine" else "right")
    for r in rows:
        base = next(b for b in rows if b["engine"] == r["engine"] and b["k"] == min(args.ks))
        table.add_row(r["engine"], str(r["k"]), f"{r['accuracy']:.2f}", f"{r['mean_steps']:.2f}",
                      f"{r['s_per_task']:.1f}", f"{r['s_per_step']:.1f}", f"{r['s_per_step'] / base['s_per_step']:.2f}x")
    console.print(table)
    if args.plot and rows:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.2))
        for name in dict.fromkeys(r["engine"] for r in rows):
            mine = [r for r in rows if r["engine"] == name]
            ax1.plot([r["k"] for r in mine], [r["accuracy"] for r in mine], marker="o", label=name)
            ax2.plot([r["k"] for r in mine], [r["s_per_step"] for r in mine], marker="o", label=name)
        ax1.set(xlabel="k", ylabel="accuracy", ylim=(0, 1), title="accuracy vs k")
        ax2.set(xlabel="k", ylabel="seconds per step", title="cost vs k")
        ax1.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        console.print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
