"""Engine throughput: tokens/s for n=1, n=8 in one batched call, and 8 separate calls.

Run: python -m tinyact.bench.engine [--models smollm2-135m qwen2.5-coder-0.5b] [--runs 3]
Prints a table of min / median / max generated tokens per second.
"""

from __future__ import annotations

import argparse
import statistics
import time

from rich.console import Console
from rich.table import Table

from tinyact.schema import Message, SamplingParams

PROMPT = [Message(role="user", content="Write a Python function that checks whether a number is prime.")]


def _one(engine, n: int, calls: int, max_tokens: int, seed: int) -> float:
    sampling = SamplingParams(temperature=0.8, top_p=0.95, max_tokens=max_tokens, seed=seed)
    started = time.perf_counter()
    tokens = 0
    for _ in range(calls):
        for c in engine.generate([PROMPT], n=n, sampling=sampling)[0]:
            tokens += c.completion_tokens
    return tokens / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["smollm2-135m", "qwen2.5-coder-0.5b"])
    parser.add_argument("--engine", default="transformers")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()

    from tinyact.models.engines import load_engine

    console = Console()
    table = Table(title=f"{args.engine} engine, generated tokens/s ({args.max_tokens} new tokens, {args.runs} runs)")
    for col in ("model", "mode", "min", "median", "max", "vs n=1"):
        table.add_column(col, justify="right" if col not in ("model", "mode") else "left")
    for name in args.models:
        engine = load_engine(name, engine=args.engine)
        _one(engine, 1, 1, 8, 0)  # warm-up
        modes = {"n=1": (1, 1), "n=8, one batched call": (8, 1), "8 separate calls": (1, 8)}
        medians: dict[str, float] = {}
        for mode, (n, calls) in modes.items():
            rates = [_one(engine, n, calls, args.max_tokens, seed) for seed in range(args.runs)]
            medians[mode] = statistics.median(rates)
            table.add_row(name, mode, f"{min(rates):.1f}", f"{medians[mode]:.1f}", f"{max(rates):.1f}",
                          f"{medians[mode] / medians['n=1']:.2f}x")
            console.log(f"{name} {mode}: median {medians[mode]:.1f} tok/s")
        del engine
    console.print(table)


if __name__ == "__main__":
    main()
