"""The distillation pipeline, stage by stage, over one ``DistillConfig`` and its work folder."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from tinyact.console import progress_bar
from tinyact.distill.config import DistillConfig

__all__ = ["Pipeline", "build_teacher"]

log = logging.getLogger(__name__)

STAGES = ("prefixes", "collect", "filter", "sft-data", "train", "export", "eval")
"""The agent-distillation stages, in order (``cot`` makes the CoT baseline's data beside them)."""


class Pipeline:
    """Runs the stages of a distillation; each reads and writes files in ``config.workdir``.

    Example:
        >>> p = Pipeline(load_config("examples/distill-cpu.yaml"))   # doctest: +SKIP
        >>> p.run_all()                                               # doctest: +SKIP
    """

    def __init__(self, config: DistillConfig, *, progress: bool = True) -> None:
        self.config = config
        self.paths = config.paths
        self.progress = progress
        self.config_file = "CONFIG"
        """How error messages name the config file (the CLI sets the path it was given)."""
        Path(config.workdir).mkdir(parents=True, exist_ok=True)
        self._engine: Any = None
        self._tools: list[Any] | None = None

    # ------------------------------------------------------------- helpers
    def questions(self) -> list[Any]:
        from tinyact.distill.questions import load_tasks

        return load_tasks(self.config.tasks)

    def teacher_engine(self) -> Any:
        if self._engine is None:
            from tinyact.models.engines import load_engine, parallel_kwargs, pick_engine

            c = self.config
            engine = pick_engine(c.teacher, **c.teacher_engine_kwargs) if c.teacher_engine == "auto" else c.teacher_engine
            self._engine = load_engine(c.teacher, engine, **parallel_kwargs(engine, c.batch_size, c.teacher_engine_kwargs))
        return self._engine

    def tools(self) -> list[Any]:
        if self._tools is None:
            self._tools = []
            if self.config.retrieval_index:
                from tinyact.tools.retrieval import open_index, search_tool

                self._tools.append(search_tool(open_index(self.config.retrieval_index)))
        return self._tools

    def overlap(self) -> dict[str, Any] | None:
        """Training questions against the held-out test sets (the evaluation's benchmarks, else every
        test set); None for seeded code tasks only. Raises ConfigError on any overlap."""
        from tinyact.distill.overlap import check_overlap, held_out_sets
        from tinyact.eval.datasets import load_benchmark

        if all(t.source == "code_tasks" for t in self.config.tasks):
            return None
        benchmarks = self.config.evaluation.benchmarks
        tests = [load_benchmark(b.name, b.split) for b in benchmarks] if benchmarks else held_out_sets()
        return check_overlap(self.questions(), tests).as_dict()

    def _manifest(self, key: str, kind: str, counts: dict[str, Any], **kw: Any) -> None:
        from tinyact.distill.manifest import write_manifest

        write_manifest(self.paths[key], kind, self.config, counts, copy_to=self.config.manifest_dir, **kw)

    # -------------------------------------------------------------- stages
    def prefixes(self) -> dict[str, str]:
        from tinyact.distill.prefixes import generate_prefixes
        from tinyact.schema import SamplingParams

        c = self.config
        questions = self.questions()
        bar = progress_bar() if self.progress else nullcontext()
        with bar:
            task = bar.add_task("prefixes", total=len(questions)) if self.progress else None

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done)

            return generate_prefixes(self.teacher_engine(), questions, self.paths["prefixes"], teacher=c.teacher,
                                     sampling=SamplingParams(temperature=0.0, max_tokens=c.prefix_max_tokens),
                                     batch_size=c.batch_size, progress=advance if self.progress else None)

    def cot(self) -> dict[str, Any]:
        """The teacher's whole greedy CoT answer to every training question, graded (``cot.jsonl``; resumes).

        Reuses the prefixes stage's rows (finished ones as they are, cut ones continued);
        QA questions come with retrieved passages when ``retrieval_index`` is set.
        """
        from tinyact.distill.cot import cot_counts, generate_cot_answers, question_kind
        from tinyact.eval.prompts import COT_PROMPT_VERSION, RAG_PROMPT_VERSION

        c = self.config
        overlap = self.overlap() if c.check_overlap else None
        questions = self.questions()
        retriever = None
        if c.retrieval_index and any(question_kind(q) == "qa" for q in questions):
            from tinyact.tools.retrieval.cli import open_retriever

            retriever = open_retriever(c.retrieval_index)
        bar = progress_bar() if self.progress else nullcontext()
        with bar:
            task = bar.add_task("cot answers", total=len(questions)) if self.progress else None

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done)

            rows = generate_cot_answers(self.teacher_engine(), questions, self.paths["cot"], teacher=c.teacher,
                                        max_tokens=c.cot_max_tokens, batch_size=c.batch_size,
                                        prefixes_path=self.paths["prefixes"], retriever=retriever, rag_k=c.cot_rag_k,
                                        index=c.retrieval_index, progress=advance if self.progress else None)
        counts = cot_counts(rows, len(questions))
        self._manifest("cot", "teacher-cot-answers", counts, questions=questions, extra={
            "prompt_versions": sorted({str(r.get("prompt")) for r in rows}),
            "cot_max_tokens": c.cot_max_tokens,
            "rag": {"index": c.retrieval_index, "k": c.cot_rag_k, "prompt": RAG_PROMPT_VERSION} if retriever else None,
            "cot_prompt_version": COT_PROMPT_VERSION,
            "overlap_check": overlap})
        return counts

    def teacher_agent(self) -> Any:
        """The teacher agent, its engine behind a ``BatchingEngine`` (close both when done)."""
        from tinyact.agents.agent import Agent
        from tinyact.models.engines.batching import BatchingEngine

        c = self.config
        engine = BatchingEngine(self.teacher_engine(), max_batch=c.batch_size, window_ms=50)
        agent = Agent(engine, tools=self.tools(), prompt=c.teacher_prompt, max_steps=c.max_steps,
                      max_tokens=c.max_tokens, exec_timeout=c.exec_timeout,
                      temperature=c.temperature)
        agent.model_name = c.teacher
        return agent

    def collect(self, ray: str | None = None, ray_workers: int | None = None) -> dict[str, Any]:
        """Teacher trajectories; with ``ray`` (a cluster address or "local") spread over Ray workers,
        each loading the teacher itself (``teacher_engine_kwargs`` may point it at vLLM servers)."""
        from tinyact.distill.collect import collect_trajectories

        c = self.config
        overlap = self.overlap() if c.check_overlap else None
        prefixes = None
        if c.use_prefix:
            prefixes = self.prefixes()  # resumes: a stage killed half-way is finished first, never used partial
        if ray is not None:
            from tinyact.eval.distributed import connect

            connect(ray)
            summary = collect_trajectories(functools.partial(build_teacher, c), self.questions(),
                                           self.paths["trajectories"], prefixes=prefixes, ray=ray,
                                           workers=ray_workers, progress=self.progress)  # type: ignore[arg-type]
        else:
            agent = self.teacher_agent()
            try:
                summary = collect_trajectories(agent, self.questions(), self.paths["trajectories"], prefixes=prefixes,
                                               workers=c.batch_size, progress=self.progress)
            finally:
                agent.close()
                agent.engine.close()
        data = summary.as_dict()
        (Path(c.workdir) / "collect-summary.json").write_text(json.dumps(data, indent=2) + "\n")
        from tinyact.distill.collect import read_trajectories

        trajs = read_trajectories(self.paths["trajectories"])
        self._manifest("trajectories", "teacher-trajectories", {k: v for k, v in data.items() if k != "seconds"},
                       questions=self.questions(), extra={
                           "prompt_versions": sorted({t.prompt_version for t in trajs}),
                           "with_prefix": sum(bool(t.metadata.get("prefix_used")) for t in trajs),
                           "overlap_check": overlap})
        return data

    def filter(self) -> dict[str, Any]:
        from tinyact.distill.filtering import filter_file

        report = filter_file(self.paths["trajectories"], self.paths["kept"], report_path=self.paths["filter_report"],
                             keep_recovered_errors=self.config.keep_recovered_errors).as_dict()
        self._manifest("kept", "filtered-trajectories", report)
        return report

    def sft_data(self, extra_logs: Sequence[str] = (), data: str = "agent") -> int:
        """SFT conversations: ``data="agent"`` the kept trajectories (and imported logs) -> ``sft.jsonl``;
        ``data="cot"`` the correct CoT answers -> ``sft-cot.jsonl``. Returns the examples written."""
        if data == "cot":
            return self._sft_cot(extra_logs)
        if data != "agent":
            from tinyact.errors import ConfigError

            raise ConfigError(f"--data must be agent or cot, got {data!r}")
        from tinyact.distill.collect import read_trajectories
        from tinyact.distill.sft_data import import_smolagents_logs, student_system_prompt, write_sft_data

        system = student_system_prompt(self.config.student_prompt, self.tools())
        extra = [ex for p in extra_logs for ex in import_smolagents_logs(p, system_prompt=system)]
        n = write_sft_data(read_trajectories(self.paths["kept"]), self.paths["sft"], system_prompt=system,
                           extra=extra)
        import hashlib

        self._manifest("sft", "sft-conversations", {"examples": n, "imported": len(extra)}, extra={
            "student_prompt": self.config.student_prompt,
            "system_prompt_sha256": hashlib.sha256(system.encode()).hexdigest()})
        return n

    def _sft_cot(self, extra_logs: Sequence[str]) -> int:
        from tinyact import jsonl
        from tinyact.distill.cot import write_cot_sft_data
        from tinyact.errors import ConfigError
        from tinyact.eval.prompts import cot_prompt_sha256

        if extra_logs:
            raise ConfigError("--import holds agent logs; it does not go with --data cot")
        if not self.paths["cot"].exists():
            raise ConfigError(f"{self.paths['cot']} does not exist: run `tinyact distill cot` first")
        rows = list(jsonl.iter_lines(self.paths["cot"]))
        n = write_cot_sft_data(rows, self.paths["sft_cot"])
        self._manifest("sft_cot", "sft-cot-conversations", {
            "examples": n, "answers": len(rows), "with_passages": sum(r.get("passages") is not None for r in rows
                                                                      if r.get("correct"))}, extra={
            "prompt_versions": sorted({str(r.get("prompt")) for r in rows if r.get("correct")}),
            "prompt_sha256": cot_prompt_sha256()})
        return n

    def variant(self, student: str | None = None, data: str | None = None) -> Any:
        """Where a student variant reads and writes (``distill/variants.py``); no arguments: the default layout."""
        from tinyact.distill.variants import resolve_variant

        return resolve_variant(self.config, student, data)

    def train(self, student: str | None = None, data: str | None = None) -> dict[str, Any]:
        """Fine-tune a student (default: the config's, on ``sft.jsonl``, into ``adapter/``); with ``student``
        or ``data`` ("agent" | "cot") into ``students/<student>-<data>/``. Writes a training manifest."""
        from tinyact.distill.train import train_student
        from tinyact.distill.variants import write_train_manifest

        v = self.variant(student, data)
        v.check_train_file(self.config_file)
        r = train_student(v.train_file, v.student, v.adapter, self.config.train, checkpoint_dir=v.checkpoints)
        out = dict(r.__dict__)
        out["manifest"] = str(write_train_manifest(v, self.config, out))
        return out

    def export(self, student: str | None = None, data: str | None = None, gguf: str | None = None) -> str:
        """Merge a variant's adapter into ``merged/``; with ``gguf`` (a quantization, e.g. "q8_0") also
        write ``merged/model.gguf`` for the llama.cpp engine."""
        from tinyact.distill.train import export_model
        from tinyact.errors import ConfigError

        v = self.variant(student, data)
        if not v.adapter.is_dir():
            raise ConfigError(f"no trained student at {v.adapter} (train it with "
                              f"`tinyact distill train {self.config_file}{v.options}`)")
        if gguf is not None:
            from tinyact.models.gguf_export import QUANTS

            if gguf.lower() not in QUANTS:
                raise ConfigError(f"--gguf must be one of {', '.join(QUANTS)}, got {gguf!r}")
        merged = export_model(v.adapter, v.merged)
        if gguf is not None:
            from tinyact.models.gguf_export import export_gguf

            export_gguf(merged, merged / "model.gguf", gguf)
            self._check_gguf(v, merged, gguf)
        return str(merged)

    def _check_gguf(self, v: Any, merged: Path, quant: str) -> dict[str, Any] | None:
        """For a LoRA student: how much of its fine-tune the GGUF keeps (``fine_tune_kept`` on the first four
        training conversations), written to ``merged/model.gguf.check.json`` (and ``<student>-<data>-gguf.json``
        in ``manifest_dir``) and warned about when under half."""
        from tinyact.distill.train import adapter_base
        from tinyact.jsonl import write_atomic
        from tinyact.models.gguf_export import fine_tune_kept

        if (base := adapter_base(v.adapter)) is None:
            return None
        with open(v.train_file, encoding="utf-8") as f:
            convs = [json.loads(line)["messages"] for line, _ in zip(f, range(4))]
        check = {"quant": quant, "base": base, "conversations": len(convs)} | fine_tune_kept(
            merged / "model.gguf", merged, base, convs)
        text = json.dumps(check, indent=2) + "\n"
        write_atomic(merged / "model.gguf.check.json", text)
        if self.config.manifest_dir:  # beside the training manifest: which GGUF the evaluations ran
            from tinyact.distill.variants import folder_name

            Path(self.config.manifest_dir).mkdir(parents=True, exist_ok=True)
            write_atomic(Path(self.config.manifest_dir) / f"{folder_name(v.student)}-{v.data}-gguf.json", text)
        if check["kept_share"] is not None and check["kept_share"] < 0.5:
            log.warning("the %s GGUF keeps only %d of the %d next-token choices the fine-tune changed (%.0f%%): it "
                        "answers much like the base model; export with --gguf q8_0 or f16", quant, check["kept"],
                        check["changed"], 100 * check["kept_share"])
        return check

    def evaluate(self, model: str | None = None, student: str | None = None, data: str | None = None) -> dict[str, Any]:
        """The student (default: the variant's merged export; its ``model.gguf`` with the llamacpp engine) on
        each held-out benchmark of ``config.evaluation``, with the student prompt, into resumable run folders
        ``eval/<benchmark>-k<samples>`` (of the variant's folder)."""
        from tinyact.agents.agent import Agent
        from tinyact.eval.agent_solver import AgentSolver
        from tinyact.eval.datasets import load_benchmark
        from tinyact.eval.runner import run_eval
        from tinyact.models.engines import load_engine, parallel_kwargs
        from tinyact.models.engines.batching import BatchingEngine
        from tinyact.tools.retrieval.cli import search_tools

        e, v = self.config.evaluation, self.variant(student, data)
        summaries: dict[str, Any] = {}
        if not e.benchmarks:
            return summaries
        if model is None:
            model = str(v.merged)
            if e.engine == "llamacpp":
                from tinyact.errors import ConfigError

                if not (v.merged / "model.gguf").is_file():
                    raise ConfigError(f"evaluation.engine llamacpp needs {v.merged / 'model.gguf'} (make it with "
                                      f"`tinyact distill export {self.config_file}{v.options} --gguf q8_0`)")
                model = str(v.merged / "model.gguf")
        inner = load_engine(model, e.engine, **parallel_kwargs(e.engine, e.parallel, e.engine_kwargs))
        engine = BatchingEngine(inner, max_batch=e.parallel, window_ms=50)
        try:
            for b in e.benchmarks:
                bench = load_benchmark(b.name, b.split)
                agent = Agent(engine, tools=search_tools(b.index), prompt=self.config.student_prompt,
                              samples=e.samples, temperature=e.temperature if e.samples > 1 else 0.0,
                              top_p=e.top_p if e.samples > 1 else 1.0, max_steps=e.max_steps,
                              max_tokens=e.max_tokens)
                agent.model_name = model
                out = v.eval / f"{b.name}-k{e.samples}"
                out.mkdir(parents=True, exist_ok=True)
                solver = AgentSolver(agent, parallel=e.parallel, trajectories=out / "trajectories.jsonl")
                try:
                    summary = run_eval(bench, solver, out, limit=b.limit, batch_size=e.parallel, method="agent",
                                       config={**solver.config, "engine": e.engine, "index": b.index},
                                       progress=self.progress)
                finally:
                    agent.close()
                summaries[b.name] = summary.model_dump()
        finally:
            engine.close()
        return summaries

    def run_all(self, *, force: bool = False) -> dict[str, Any]:
        """Every stage in order; train and export are skipped when their output exists (unless ``force``);
        the evaluation runs when ``config.evaluation`` lists benchmarks (and resumes)."""
        out: dict[str, Any] = {}
        if self.config.use_prefix:
            out["prefixes"] = len(self.prefixes())
        out["collect"] = self.collect()
        out["filter"] = self.filter()
        out["sft_examples"] = self.sft_data()
        if force or not (self.paths["adapter"] / "tinyact-train.json").exists():
            out["train"] = {k: v for k, v in self.train().items() if k != "losses"}
        if force or not (self.paths["merged"] / "config.json").exists():
            out["export"] = self.export()
        if self.config.evaluation.benchmarks:
            out["eval"] = self.evaluate()
        return out


def build_teacher(config: DistillConfig) -> Any:
    """The teacher agent for ``config`` (module-level: what each Ray worker of a collection builds)."""
    return Pipeline(config, progress=False).teacher_agent()
