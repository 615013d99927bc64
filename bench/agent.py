"""Agent benchmark: accuracy of the default model (full vs short prompt) on seeded
code-needing tasks, and the controller's own overhead per step, side by side with
smolagents' CodeAgent driven by an equivalent scripted model.

Run: python -m tinyact.bench.agent [--tasks 35] [--task-set code|bignum] [--model qwen2.5-coder-0.5b]
                                      [--skip-model] [--plot bench/results/agent.png]

``--task-set bignum``: exact 20-48 digit answers (``make_bignum_tasks``), where
retyping an observed value instead of answering with its variable goes wrong.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tinyact.bench.task_runs import solve, summarize
from tinyact.console import progress_bar
from tinyact.eval.code_tasks import make_bignum_tasks, make_code_tasks
from tinyact.schema import ExecResult

console = Console()


class NullSession:
    """An in-process stand-in for the sandbox: isolates the controller's own cost."""

    def execute(self, code: str, timeout: float | None = None) -> ExecResult:
        if "final_answer(" in code:
            return ExecResult(called_final_answer=True, final_answer=1)
        return ExecResult(stdout="1\n")

    def fork(self) -> NullSession:
        return NullSession()

    def adopt(self, fork: NullSession) -> None:
        pass

    def close(self) -> None:
        pass


def _script(steps: int) -> list[str]:
    body = [f"Thought: step {i}\nCode:\n```py\nx = {i}\nprint(x)\n```" for i in range(steps - 1)]
    return body + ["Thought: done\nCode:\n```py\nfinal_answer(1)\n```"]


def controller_overhead(runs: int, steps: int, sandbox: str) -> list[float]:
    """Milliseconds per step for ``runs`` runs of ``steps`` steps each."""
    from tinyact.agents import Agent
    from tinyact.models.engines import ReplayEngine

    per_step = []
    for _ in range(runs):
        engine = ReplayEngine(_script(steps))
        opener = (lambda tools: NullSession()) if sandbox == "null" else "process"
        agent = Agent(engine, sandbox=opener, max_steps=steps + 1)
        started = time.perf_counter()
        result = agent.run("benchmark task")
        elapsed = time.perf_counter() - started
        assert result.answer == 1 and len(result.steps) == steps
        per_step.append(1000 * elapsed / steps)
    return per_step


def smolagents_overhead(runs: int, steps: int) -> list[float] | None:
    try:
        from smolagents import CodeAgent
        from smolagents.models import ChatMessage, Model
    except ImportError:
        return None

    class Scripted(Model):
        def __init__(self, texts: list[str]) -> None:
            super().__init__(model_id="scripted")
            self.texts = list(texts)

        def generate(self, messages, stop_sequences=None, response_format=None, tools_to_call_from=None, **kw):
            return ChatMessage(role="assistant", content=self.texts.pop(0))

    def to_smol(text: str) -> str:  # smolagents 1.2x wants <code> tags by default
        thought, code = text.split("```py\n")
        return f"{thought.replace('Code:', '').strip()}\n<code>\n{code.replace('```', '').strip()}\n</code>"

    per_step = []
    for _ in range(runs):
        agent = CodeAgent(tools=[], model=Scripted([to_smol(t) for t in _script(steps)]), max_steps=steps + 1,
                          verbosity_level=0)
        started = time.perf_counter()
        answer = agent.run("benchmark task")
        elapsed = time.perf_counter() - started
        assert str(answer) == "1", answer
        per_step.append(1000 * elapsed / steps)
    return per_step


def accuracy(model: str, prompts: list[str], n_tasks: int, max_steps: int, engine_name: str,
             time_budget: float | None = None, task_set: str = "code") -> list[dict]:
    from tinyact.agents import Agent
    from tinyact.models.engines import load_engine

    tasks = (make_bignum_tasks if task_set == "bignum" else make_code_tasks)(n_tasks)
    engine = load_engine(model, engine=engine_name)
    agents = {p: Agent(engine, prompt=p, max_steps=max_steps, time_budget=time_budget) for p in prompts}
    runs: dict[str, list] = {p: [] for p in prompts}
    with progress_bar(console=console) as progress:
        # Prompts alternate task by task, so a shared machine's changing load falls on all alike.
        for task in tasks:
            for prompt, agent in agents.items():
                runs[prompt] += solve(agent, [task], progress, f"{prompt} prompt, task {task.id}")
                last = runs[prompt][-1]
                console.log({"prompt": prompt, "task": task.id, "correct": last.correct, "steps": last.steps,
                             "seconds": round(last.seconds, 1), "out_of_time": last.out_of_time,
                             "answer": str(last.answer)[:60], "final_code": last.final_code[-120:]})  # survives a crash
    return [{"prompt": p, **summarize(r)} for p, r in runs.items()]


def print_overhead(runs: int, steps: int) -> None:
    """The controller-overhead table: tinyact (null and real sandbox) beside smolagents."""
    overhead = Table(title=f"controller overhead, ms per step ({runs} runs x {steps} steps)")
    for col in ("loop", "min", "p50", "max"):
        overhead.add_column(col, justify="left" if col == "loop" else "right")
    measured = {
        "tinyact, null sandbox (controller only)": controller_overhead(runs, steps, "null"),
        "tinyact, real sandbox (bwrap process)": controller_overhead(max(3, runs // 5), steps, "process"),
        "smolagents CodeAgent, scripted model": smolagents_overhead(runs, steps),
    }
    for name, values in measured.items():
        if values is None:
            overhead.add_row(name, "-", "not installed", "-")
        else:
            overhead.add_row(name, f"{min(values):.2f}", f"{statistics.median(values):.2f}", f"{max(values):.2f}")
    console.print(overhead)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--tasks", type=int, default=35)
    parser.add_argument("--task-set", choices=("code", "bignum"), default="code",
                        help="code: the seeded code tasks; bignum: exact big-number answers")
    parser.add_argument("--engine", default="transformers", help="transformers | vllm | llamacpp")
    parser.add_argument("--max-steps", type=int, default=5)
    parser.add_argument("--prompts", nargs="+", default=["full", "short"])
    parser.add_argument("--time-budget", type=float, default=None,
                        help="wall-clock seconds per task; a task past it ends unanswered (counted wrong)")
    parser.add_argument("--runs", type=int, default=30, help="runs for the overhead measurement")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--skip-model", action="store_true", help="only measure controller overhead")
    parser.add_argument("--skip-overhead", action="store_true", help="only measure accuracy")
    parser.add_argument("--plot", default="bench/results/agent.png")
    args = parser.parse_args()

    if not args.skip_overhead:
        print_overhead(args.runs, args.steps)
    if args.skip_model:
        return
    rows = accuracy(args.model, args.prompts, args.tasks, args.max_steps, args.engine, args.time_budget,
                    args.task_set)
    budget = f", {args.time_budget:g} s budget per task" if args.time_budget else ""
    table = Table(title=f"{args.model} ({args.engine}) on {args.tasks} seeded {args.task_set} tasks "
                        f"(max {args.max_steps} steps, greedy{budget})")
    for col in ("prompt", "accuracy", "mean steps", "format-error rate", "s/task (median)", "out of time"):
        table.add_column(col, justify="left" if col == "prompt" else "right")
    for r in rows:
        table.add_row(r["prompt"], f"{r['accuracy']:.2f}", f"{r['mean_steps']:.2f}", f"{r['format_error_rate']:.2f}",
                      f"{r['s_per_task']:.1f}", str(r["out_of_time"]))
    console.print(table)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.bar([r["prompt"] for r in rows], [r["accuracy"] for r in rows], color=["#4c72b0", "#dd8452"][: len(rows)])
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy")
        ax.set_title(f"{args.model}: prompt choice")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        console.print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
