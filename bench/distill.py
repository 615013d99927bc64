"""Distillation benchmark: a real, small teacher -> student run on this machine, end to end.

Teacher (qwen2.5-coder-0.5b by default) on seeded code-needing tasks, with and
without first-thought prefixes; filter; SFT data; LoRA-train the student
(smollm2-135m); evaluate it on held-out tasks (another seed) untuned (full
prompt), agent-distilled (short prompt) and CoT-distilled (the paper's
baseline), at k=1 and, with --k8, k=8.

Every stage writes into --out and skips work already there (trajectory and
eval files are resumable line by line), so a killed run continues where it
stopped: rerun the same command. The table is printed from whatever is on disk.

Run: python -m tinyact.bench.distill [--train 14] [--heldout 14] [--out runs/bench-distill]
                                        [--stages all|prefix,collect,...] [--k8]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()

STAGES = ("prefixes", "collect-prefix", "train-agent", "eval-untuned", "eval-agent", "collect-noprefix",
          "cot-teacher", "train-cot", "eval-cot", "k8")


def _log(msg: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {msg}", highlight=False)


def _timed(out: Path, name: str, fn: Any) -> Any:
    """Run a stage and add its wall time to timings.json (summed over resumed runs)."""
    path = out / "timings.json"
    timings = json.loads(path.read_text()) if path.exists() else {}
    started = time.time()
    try:
        return fn()
    except Exception:  # report and go on: later stages skip what they lack; rerun after a fix
        console.print_exception(max_frames=8)
        return None
    finally:
        timings = json.loads(path.read_text()) if path.exists() else {}
        timings[name] = round(timings.get(name, 0.0) + time.time() - started, 1)
        path.write_text(json.dumps(timings, indent=2) + "\n")


def _agent_eval(engine: Any, questions: list, out_file: Path, *, prompt: str, samples: int, args: Any,
                model_name: str) -> dict:
    from tinyact.agents.agent import Agent
    from tinyact.distill.collect import collect_trajectories
    from tinyact.models.engines.batching import BatchingEngine

    batching = BatchingEngine(engine, max_batch=args.batch, window_ms=50)
    agent = Agent(batching, prompt=prompt, max_steps=args.max_steps, max_tokens=args.max_tokens,
                  samples=samples, exec_timeout=10.0)
    agent.model_name = model_name
    try:
        return collect_trajectories(agent, questions, out_file, workers=args.batch, progress=True).as_dict()
    finally:
        agent.close()
        batching.close()


def _cot_eval(engine: Any, questions: list, out_file: Path, *, samples: int, batch: int) -> dict:
    """CoT answers (math prompt, boxed) graded with the code-task checker; resumable JSONL."""
    from tinyact.jsonl import JsonlWriter, iter_lines
    from tinyact.eval.cot import CoTSolver
    from tinyact.eval.code_tasks import check_code_answer

    solver = CoTSolver(engine, "math", samples=samples)
    solver.sampling = solver.sampling.model_copy(update={"max_tokens": 384})
    done = {r["id"] for r in iter_lines(out_file)}
    todo = [q for q in questions if q.id not in done]
    with JsonlWriter(out_file) as w:
        for i in range(0, len(todo), batch):
            part = todo[i : i + batch]
            for q, p in zip(part, solver(part)):
                w.write({"id": q.id, "answer": p.text, "gold": q.answer, "raw": p.raw,
                         "correct": check_code_answer(p.text, q.answer)})
            _log(f"cot eval {out_file.name}: {len(done) + i + len(part)}/{len(questions)}")
    rows = list(iter_lines(out_file))
    return {"done": len(rows), "solved": sum(r["correct"] for r in rows)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/bench-distill")
    ap.add_argument("--teacher", default="qwen2.5-coder-0.5b")
    ap.add_argument("--student", default="smollm2-135m")
    ap.add_argument("--train", type=int, default=14, help="training questions (code tasks, seed 1)")
    ap.add_argument("--heldout", type=int, default=14, help="held-out questions (code tasks, seed 2)")
    ap.add_argument("--noprefix-train", type=int, default=None,
                    help="questions for the teacher run without prefix (default: --train); the first N of the "
                         "training questions, compared with the prefix run on those same N")
    ap.add_argument("--max-steps", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--batch", type=int, default=7)
    ap.add_argument("--train-steps", type=int, default=30, help="optimizer steps of LoRA training")
    ap.add_argument("--stages", default="all", help=f"comma list of {','.join(STAGES)} or 'all'")
    ap.add_argument("--k8", action="store_true", help="also evaluate with k=8 (slow on CPU)")
    ap.add_argument("--table-only", action="store_true")
    ap.add_argument("--plot", default="bench/results/distill.png", help="PNG of the students' accuracy ('' for none)")
    args = ap.parse_args()

    from tinyact.distill import DistillConfig, Pipeline, TaskSource, TrainConfig, load_tasks

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stages = set(STAGES if args.stages == "all" else args.stages.split(","))
    if not args.k8:
        stages.discard("k8")
    if args.table_only:
        stages = set()
    # small and fast on a shared 2-core CPU: LoRA r=16, batch 2, no gradient checkpointing (135M params)
    train_cfg = TrainConfig(lora_r=16, lora_alpha=32, max_steps=args.train_steps, per_device_batch_size=2,
                            gradient_accumulation_steps=1, max_length=1024, learning_rate=5e-4, save_steps=4,
                            warmup_ratio=0.05, gradient_checkpointing=False)

    def cfg(workdir: str, use_prefix: bool, n: int) -> DistillConfig:
        return DistillConfig(workdir=str(out / workdir), teacher=args.teacher, student=args.student,
                             tasks=[TaskSource(source="code_tasks", n=n, seed=1)], use_prefix=use_prefix,
                             prefix_max_tokens=96, max_steps=args.max_steps, max_tokens=args.max_tokens,
                             batch_size=args.batch, train=train_cfg)

    args.noprefix_train = min(args.noprefix_train or args.train, args.train)
    with_prefix = Pipeline(cfg("agent-prefix", True, args.train))
    no_prefix = Pipeline(cfg("agent-noprefix", False, args.noprefix_train))
    heldout = load_tasks([TaskSource(source="code_tasks", n=args.heldout, seed=2)])
    engines: dict[str, Any] = {}

    def engine(name: str) -> Any:
        if name not in engines:
            from tinyact.models.engines.transformers import TransformersEngine

            engines.clear()  # one model in memory at a time
            engines[name] = TransformersEngine(name)
        return engines[name]

    if "prefixes" in stages:
        _log("stage prefixes")
        with_prefix._engine = engine(args.teacher)
        _timed(out, "prefixes", with_prefix.prefixes)
    if "collect-prefix" in stages:
        _log("stage collect (teacher, with first-thought prefixes)")
        with_prefix._engine = engine(args.teacher)
        _timed(out, "collect-prefix", with_prefix.collect)
    if "train-agent" in stages:
        _log("stage filter + sft-data + train + export (agent distillation)")
        with_prefix.filter()
        with_prefix.sft_data()
        if not (with_prefix.paths["merged"] / "config.json").exists():
            engines.clear()
            _timed(out, "train-agent", with_prefix.train)
            with_prefix.export()
    if "eval-untuned" in stages:
        _log("stage eval untuned student (full prompt, k=1)")
        _timed(out, "eval-untuned", lambda: _agent_eval(engine(args.student), heldout, out / "eval-untuned-k1.jsonl",
                                                         prompt="full", samples=1, args=args,
                                                         model_name=args.student))
    if "eval-agent" in stages and (with_prefix.paths["merged"] / "config.json").exists():
        _log("stage eval agent-distilled student (short prompt, k=1)")
        merged = str(with_prefix.paths["merged"])
        _timed(out, "eval-agent", lambda: _agent_eval(engine(merged), heldout, out / "eval-agent-k1.jsonl",
                                                       prompt="short", samples=1, args=args,
                                                       model_name="agent-distilled"))
    if "collect-noprefix" in stages:
        _log("stage collect (teacher, no prefix)")
        no_prefix._engine = engine(args.teacher)
        _timed(out, "collect-noprefix", no_prefix.collect)
    cot_dir = out / "cot"
    if "cot-teacher" in stages:
        _log("stage teacher CoT answers on the training questions")
        cot_dir.mkdir(exist_ok=True)
        _timed(out, "cot-teacher", lambda: _cot_eval(engine(args.teacher), with_prefix.questions(),
                                                       cot_dir / "teacher.jsonl", samples=1, batch=args.batch))
    if "train-cot" in stages and (cot_dir / "teacher.jsonl").exists() and not (cot_dir / "merged" / "config.json").exists():
        _log("stage CoT distillation: train on the teacher's correct CoT answers")
        from tinyact.distill.train import export_model, train_student
        from tinyact.jsonl import iter_lines, rewrite
        from tinyact.eval.prompts import cot_messages

        qs = {q.id: q for q in with_prefix.questions()}
        rewrite(cot_dir / "sft.jsonl", (
            {"id": r["id"], "messages": [m.model_dump() for m in cot_messages(qs[r["id"]].question, "math")]
             + [{"role": "assistant", "content": r["raw"]}]}
            for r in iter_lines(cot_dir / "teacher.jsonl") if r["correct"]
        ))
        engines.clear()
        _timed(out, "train-cot", lambda: train_student(cot_dir / "sft.jsonl", args.student, cot_dir / "adapter",
                                                        train_cfg, checkpoint_dir=cot_dir / "checkpoints"))
        export_model(cot_dir / "adapter", cot_dir / "merged")
    if "eval-cot" in stages and (cot_dir / "merged" / "config.json").exists():
        _log("stage eval CoT-distilled student (k=1)")
        _timed(out, "eval-cot", lambda: _cot_eval(engine(str(cot_dir / "merged")), heldout,
                                                   out / "eval-cot-k1.jsonl", samples=1, batch=args.batch))
    if "k8" in stages:
        _log("stage k=8 evaluations (cheapest first: the untuned model rambles to the token limit)")
        if (with_prefix.paths["merged"] / "config.json").exists():
            _timed(out, "eval-agent-k8", lambda: _agent_eval(
                engine(str(with_prefix.paths["merged"])), heldout, out / "eval-agent-k8.jsonl", prompt="short",
                samples=8, args=args, model_name="agent-distilled"))
        if (cot_dir / "merged" / "config.json").exists():
            _timed(out, "eval-cot-k8", lambda: _cot_eval(engine(str(cot_dir / "merged")), heldout,
                                                          out / "eval-cot-k8.jsonl", samples=8, batch=args.batch))
        _timed(out, "eval-untuned-k8", lambda: _agent_eval(engine(args.student), heldout,
                                                           out / "eval-untuned-k8.jsonl", prompt="full", samples=8,
                                                           args=args, model_name=args.student))
    table(out, with_prefix, no_prefix, args)
    if args.plot:
        plot(out, args.plot, args)


def _count(path: Path, key: str = "correct", ids: set[str] | None = None) -> tuple[int, int] | None:
    """(correct, total) in a trajectory or eval JSONL, or None when it has no rows."""
    from tinyact.jsonl import iter_lines

    rows = list(iter_lines(path))
    if ids is not None:
        rows = [r for r in rows if r.get("metadata", r).get("question_id", r.get("id")) in ids]
    if not rows:
        return None
    return sum(bool(r.get("metadata", r).get(key)) for r in rows), len(rows)


def _acc(path: Path, key: str = "correct", ids: set[str] | None = None) -> str:
    counted = _count(path, key, ids)
    if counted is None:
        return "-"
    ok, n = counted
    return f"{ok}/{n} ({ok / n:.0%})"


STUDENTS = {"untuned": "untuned\n(full prompt)", "agent": "agent-distilled\n(short prompt)", "cot": "CoT-distilled"}


def plot(out: Path, path: str, args: Any) -> None:
    """Held-out accuracy of each student at k=1 and k=8 (bars; partial runs are labelled with their n)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    width = 0.38
    for j, k in enumerate((1, 8)):
        label = f"k={k}"
        for i, name in enumerate(STUDENTS):
            counted = _count(out / f"eval-{name}-k{k}.jsonl")
            if counted is None:
                continue
            ok, n = counted
            x = i + (j - 0.5) * width
            ax.bar(x, ok / n, width, color=("#4c72b0", "#dd8452")[j], label=label)
            ax.text(x, ok / n + 0.02, f"{ok}/{n}", ha="center", fontsize=8)
            label = None  # one legend entry per k
    ax.legend(loc="upper right")
    ax.set_xticks(range(len(STUDENTS)), list(STUDENTS.values()), fontsize=8)
    ax.set(ylim=(0, 1), ylabel="held-out accuracy", title=f"{args.student} distilled from {args.teacher}")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    console.print(f"plot: {path}")


def table(out: Path, with_prefix: Any, no_prefix: Any, args: Any) -> None:
    timings = json.loads((out / "timings.json").read_text()) if (out / "timings.json").exists() else {}
    t = Table(title=f"distillation on CPU: teacher {args.teacher}, student {args.student}, "
                    f"{args.train} train / {args.heldout} held-out code tasks, max_steps {args.max_steps}")
    t.add_column("what")
    t.add_column("result", justify="right")
    t.add_column("seconds", justify="right")
    t.add_row("teacher agent, with first-thought prefix", _acc(with_prefix.paths["trajectories"]),
              str(timings.get("collect-prefix", "")))
    if args.noprefix_train < args.train:
        same = {q.id for q in no_prefix.questions()}
        t.add_row(f"teacher agent, with prefix, the first {len(same)} questions",
                  _acc(with_prefix.paths["trajectories"], ids=same), "")
    t.add_row("teacher agent, no prefix", _acc(no_prefix.paths["trajectories"]), str(timings.get("collect-noprefix", "")))
    t.add_row("teacher CoT (train questions)", _acc(out / "cot" / "teacher.jsonl"), str(timings.get("cot-teacher", "")))
    rep = with_prefix.paths["filter_report"]
    if rep.exists():
        r = json.loads(rep.read_text())
        t.add_row("kept trajectories (prefix run)", f"{r['kept']}/{r['total']} "
                  f"rejected {{{', '.join(f'{k}: {v}' for k, v in r['rejected'].items() if v)}}}", "")
    info = with_prefix.paths["adapter"] / "tinyact-train.json"
    if info.exists():
        i = json.loads(info.read_text())
        losses = i["losses"]
        t.add_row("agent SFT (LoRA)", f"{i['examples']} conv, {i['steps']} steps, loss {losses[0]:.3f} -> "
                  f"{losses[-1]:.3f}" if losses else "", str(timings.get("train-agent", "")))
    t.add_row("student untuned, full prompt, k=1", _acc(out / "eval-untuned-k1.jsonl"), str(timings.get("eval-untuned", "")))
    t.add_row("student agent-distilled, short prompt, k=1", _acc(out / "eval-agent-k1.jsonl"),
              str(timings.get("eval-agent", "")))
    t.add_row("student CoT-distilled, k=1", _acc(out / "eval-cot-k1.jsonl"), str(timings.get("eval-cot", "")))
    for name in ("untuned", "agent", "cot"):
        p = out / f"eval-{name}-k8.jsonl"
        if p.exists():
            t.add_row(f"student {name}, k=8", _acc(p), str(timings.get(f"eval-{name}-k8", "")))
    console.print(t)


if __name__ == "__main__":
    main()
