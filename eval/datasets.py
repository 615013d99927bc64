"""Benchmark loaders: the paper's question sets and HotpotQA-distractor (with its corpus)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tinyact.errors import ConfigError
from tinyact.eval.metrics import Score, check_math, check_qa

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "BenchmarkSpec",
    "Question",
    "iter_hotpotqa_corpus",
    "list_benchmarks",
    "load_benchmark",
    "load_jsonl_benchmark",
    "shared_data_dir",
]

Kind = Literal["qa", "math"]
Answer = str | float | int | list[str]

_ENV = "TINYACT_SHARED_DATA"


def shared_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The shared data folder: ``data_dir``, else ``$TINYACT_SHARED_DATA``, else ``../shared/data``.

    Args:
        data_dir: An explicit folder; wins over the environment and the default.

    Returns:
        The folder (it exists).

    Raises:
        ConfigError: The folder does not exist; the message names the path tried.
    """
    if data_dir is not None:
        path, how = Path(data_dir), "argument data_dir"
    elif os.environ.get(_ENV):
        path, how = Path(os.environ[_ENV]), f"${_ENV}"
    else:
        # The repository root is the package; shared/ sits beside the checkout.
        path, how = Path(__file__).resolve().parents[1].parent / "shared" / "data", "default"
    if not path.is_dir():
        raise ConfigError(
            f"shared data folder not found: {path} (from {how}); "
            f"set {_ENV} to the folder holding benchmarks/ and hotpotqa-distractor/"
        )
    return path


@dataclass(frozen=True)
class Question:
    """One benchmark question and its gold answer (a string, a number, or a list of aliases)."""

    id: str
    question: str
    answer: Answer
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchmarkSpec:
    """Where a benchmark's files are, per split, and how to grade it."""

    name: str
    kind: Kind
    files: dict[str, str]
    """split -> path relative to the shared data folder."""
    fmt: Literal["agent-distillation", "hotpotqa-jsonl"] = "agent-distillation"
    default_split: str = "test"
    numeric: bool = False
    """Grade with a relative tolerance first (GSM-Hard's float answers)."""
    has_corpus: bool = False


_QA = "benchmarks/qa_dataset"
_MATH = "benchmarks/math_dataset"
_HD = "hotpotqa-distractor"

BENCHMARKS: dict[str, BenchmarkSpec] = {
    s.name: s
    for s in [
        BenchmarkSpec(
            "hotpotqa",
            "qa",
            {
                "test": f"{_QA}/test/hotpotqa_500_20250422.json",
                "train": f"{_QA}/train/hotpotqa_1000_20250402.json",
            },
        ),
        BenchmarkSpec("bamboogle", "qa", {"test": f"{_QA}/test/bamboogle_125_20250507.json"}),
        BenchmarkSpec("musique", "qa", {"test": f"{_QA}/test/musique_500_20250504.json"}),
        BenchmarkSpec("2wiki", "qa", {"test": f"{_QA}/test/2wikimultihopqa_500_20250511.json"}),
        BenchmarkSpec(
            "math500",
            "math",
            {"test": f"{_MATH}/test/math_500_20250414.json"},
        ),
        BenchmarkSpec(
            "math",
            "math",
            {
                "train": f"{_MATH}/train/math_1000_20250414.json",
                "train-medium": f"{_MATH}/train/math_medium_1000_20250430.json",
            },
            default_split="train",
        ),
        BenchmarkSpec(
            "gsm-hard", "math", {"test": f"{_MATH}/test/gsm_hard_500_20250507.json"}, numeric=True
        ),
        BenchmarkSpec("aime", "math", {"test": f"{_MATH}/test/aime_90_20250504.json"}),
        BenchmarkSpec("olymmath", "math", {"test": f"{_MATH}/test/olymath_200_20250511.json"}),
        BenchmarkSpec(
            "hotpotqa-distractor",
            "qa",
            {s: f"{_HD}/{s}.jsonl" for s in ("train", "dev", "test")},
            fmt="hotpotqa-jsonl",
            has_corpus=True,
        ),
    ]
}


@dataclass
class Benchmark:
    """Questions, an answer checker and, for HotpotQA-distractor, a corpus to search.

    Example:
        >>> bench = load_benchmark("gsm-hard", limit=2)
        >>> bench.check("The answer is \\\\boxed{13138980}", bench.questions[0].answer).correct
        True
    """

    name: str
    kind: Kind
    split: str
    questions: list[Question]
    path: Path
    numeric: bool = False
    corpus_files: tuple[Path, ...] = ()
    """Files whose context paragraphs form the corpus (empty: no corpus)."""

    @property
    def metric(self) -> str:
        """The name of the deterministic metric that decides ``correct``."""
        return "em" if self.kind == "qa" else "math_equiv"

    @property
    def has_corpus(self) -> bool:
        return bool(self.corpus_files)

    def check(self, prediction: str | None, gold: Answer) -> Score:
        """Grade one prediction against a gold answer (see ``metrics.check_qa`` / ``check_math``)."""
        if self.kind == "qa":
            return check_qa(prediction, gold)
        if isinstance(gold, list):  # aliases: the first that matches, else the first's score
            scores = [check_math(prediction, g, numeric=self.numeric) for g in gold]
            return next((sc for sc in scores if sc.correct), scores[0])
        return check_math(prediction, gold, numeric=self.numeric)

    def corpus(self) -> Iterator[dict[str, str]]:
        """Yield the corpus passages (``id``, ``title``, ``text``, ``contents``), deduplicated.

        Raises:
            ConfigError: This benchmark has no corpus.
        """
        if not self.corpus_files:
            raise ConfigError(f"benchmark {self.name!r} has no corpus")
        return iter_hotpotqa_corpus(self.corpus_files)

    def write_corpus(self, path: str | os.PathLike[str]) -> int:
        """Write the corpus as wiki-18 JSONL (``{"id", "contents": "\\"Title\\"\\ntext"}``).

        Returns:
            The number of passages written.
        """
        from tinyact import jsonl

        return jsonl.rewrite(path, ({"id": p["id"], "contents": p["contents"]} for p in self.corpus()))


def list_benchmarks() -> list[str]:
    """The registered benchmark names, sorted."""
    return sorted(BENCHMARKS)


def load_benchmark(
    name: str,
    split: str | None = None,
    *,
    limit: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> Benchmark:
    """Load a registered benchmark from the shared data folder.

    Args:
        name: One of ``list_benchmarks()`` (e.g. ``"hotpotqa"``, ``"gsm-hard"``,
            ``"hotpotqa-distractor"``).
        split: ``"test"`` by default; HotpotQA-distractor also has ``"train"`` and
            ``"dev"``, ``hotpotqa`` has ``"train"``, ``math`` has ``"train"`` and
            ``"train-medium"``.
        limit: Keep only the first ``limit`` questions (file order).
        data_dir: Overrides the shared data folder (see ``shared_data_dir``).

    Returns:
        The benchmark, its questions in file order.

    Raises:
        ConfigError: Unknown name or split, or the data folder is missing.
    """
    spec = BENCHMARKS.get(name)
    if spec is None and (name.endswith(".jsonl") or Path(name).is_file()):
        raise ConfigError(f"{name} is a file: load it with load_jsonl_benchmark(path, kind)")
    if spec is None:
        raise ConfigError(f"unknown benchmark {name!r}; known: {', '.join(list_benchmarks())}")
    split = split or spec.default_split
    if split not in spec.files:
        raise ConfigError(
            f"benchmark {name!r} has no split {split!r}; splits: {', '.join(sorted(spec.files))}"
        )
    root = shared_data_dir(data_dir)
    path = root / spec.files[split]
    if not path.is_file():
        raise ConfigError(f"benchmark file not found: {path}")
    if spec.fmt == "hotpotqa-jsonl":
        questions = _read_hotpotqa_jsonl(path)
    else:
        questions = _read_agent_distillation(path)
    if limit is not None:
        if limit < 0:
            raise ConfigError(f"limit must be >= 0, got {limit}")
        questions = questions[:limit]
    corpus_files = tuple(root / f for f in spec.files.values()) if spec.has_corpus else ()
    return Benchmark(
        name=name,
        kind=spec.kind,
        split=split,
        questions=questions,
        path=path,
        numeric=spec.numeric,
        corpus_files=corpus_files,
    )


def load_jsonl_benchmark(
    path: str | os.PathLike[str], kind: str, *, limit: int | None = None,
) -> Benchmark:
    """Your own benchmark: a JSONL file of ``{"question", "answer", "id"?}`` lines.

    ``answer`` is a string, a number, or a list of aliases (any one counts);
    ``id`` defaults to the line number (ids key resumable runs, so keep them
    stable when the file grows). Other fields are kept as metadata. The name
    is the file's stem; QA is graded by exact match (F1 recorded), math by
    equivalence (numbers with a relative tolerance when every answer is one).

    Raises:
        ConfigError: A bad kind, a missing file, or a bad line (named with its number).
    """
    if kind not in ("qa", "math"):
        raise ConfigError(f"kind must be qa or math, got {kind!r}")
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"benchmark file not found: {file}")
    questions: list[Question] = []
    ids: set[str] = set()
    for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            ex = json.loads(line)
        except ValueError as e:
            raise ConfigError(f"{file}:{n}: not JSON ({e})") from None
        if not isinstance(ex, dict):
            raise ConfigError(f"{file}:{n}: expected an object with question and answer")
        question, answer = ex.get("question"), ex.get("answer")
        if not isinstance(question, str) or not question.strip():
            raise ConfigError(f"{file}:{n}: question must be a non-empty string")
        ok = isinstance(answer, (str, int, float)) and not isinstance(answer, bool) and str(answer).strip()
        if isinstance(answer, list):
            ok = bool(answer) and all(isinstance(a, (str, int, float)) and str(a).strip() for a in answer)
        if not ok:
            raise ConfigError(f"{file}:{n}: answer must be a string, a number or a non-empty list of them")
        qid = str(ex.get("id", n))
        if qid in ids:
            raise ConfigError(f"{file}:{n}: duplicate id {qid!r}")
        ids.add(qid)
        meta = {k: v for k, v in ex.items() if k not in ("id", "question", "answer")}
        questions.append(Question(qid, question, answer, meta))
    if not questions:
        raise ConfigError(f"{file}: no questions")
    if limit is not None:
        if limit < 0:
            raise ConfigError(f"limit must be >= 0, got {limit}")
        questions = questions[:limit]
    numeric = kind == "math" and all(isinstance(q.answer, (int, float)) for q in questions)
    return Benchmark(name=file.stem, kind=kind, split="file", questions=questions, path=file.resolve(),  # type: ignore[arg-type]
                     numeric=numeric)


def _read_agent_distillation(path: Path) -> list[Question]:
    data = json.loads(path.read_text(encoding="utf-8"))
    out: list[Question] = []
    for ex in data["examples"]:
        if ex.get("answer") is None or not str(ex["answer"]).strip():
            continue  # ungradable: two items of each MATH train file have no answer
        meta = {k: v for k, v in ex.items() if k not in ("id", "question", "answer")}
        out.append(Question(str(ex["id"]), ex["question"], ex["answer"], meta))
    return out


def _read_hotpotqa_jsonl(path: Path) -> list[Question]:
    out: list[Question] = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            ex = json.loads(line)
            sf = ex.get("supporting_facts") or {}
            meta = {
                "type": ex.get("type"),
                "level": ex.get("level"),
                "gold_titles": sorted(set(sf.get("title", []))),
                "supporting_facts": sf,
            }
            out.append(Question(str(ex["id"]), ex["question"], ex["answer"], meta))
    return out


def iter_hotpotqa_corpus(files: tuple[Path, ...] | list[Path]) -> Iterator[dict[str, str]]:
    """Yield each distinct context paragraph of HotpotQA jsonl files, wiki-18 style.

    A paragraph is identified by its title (HotpotQA titles are Wikipedia page
    titles, one paragraph each); the first occurrence wins.

    Args:
        files: HotpotQA-format jsonl files.

    Yields:
        ``{"id": title, "title", "text": joined sentences, "contents": '"Title"\\ntext'}``.
    """
    seen: set[str] = set()
    for path in files:
        with Path(path).open(encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                ctx = json.loads(line)["context"]
                for title, sents in zip(ctx["title"], ctx["sentences"], strict=True):
                    if title in seen:
                        continue
                    seen.add(title)
                    text = "".join(sents).strip()
                    yield {
                        "id": title,
                        "title": title,
                        "text": text,
                        "contents": f'"{title}"\n{text}',
                    }
