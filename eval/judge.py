"""An LLM judge for factual answers, over any OpenAI-compatible chat completions endpoint (via OpenAIEngine)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from tinyact.errors import EngineError
from tinyact.eval.metrics import Score, check_qa, extract_qa_answer

if TYPE_CHECKING:
    import httpx

__all__ = ["JUDGE_PROMPT", "JUDGE_PROMPT_VERSION", "LLMJudge"]

JUDGE_PROMPT_VERSION = "judge-v1"
JUDGE_PROMPT = """You are grading an answer to a factual question.
Decide whether the predicted answer means the same thing as the gold answer
(aliases, abbreviations, extra or missing details that do not change the
meaning are fine; a different entity, number or date is not).

Question: {question}
Gold answer: {gold}
Predicted answer: {prediction}

Is the predicted answer correct? Reply with one word: yes or no."""


class LLMJudge:
    """Grades answers by asking a model "yes or no" through ``/v1/chat/completions``.

    The request goes through ``OpenAIEngine`` (greedy, 4 tokens, no vLLM-only
    fields), so the judge shares the engine's client and retry policy.
    The deterministic EM/F1 are computed too and kept in ``Score.details``;
    ``Score.metric`` is ``"llm_judge"``.

    Example:
        >>> judge = LLMJudge("http://localhost:8000/v1", "Qwen2.5-32B-Instruct")  # doctest: +SKIP
        >>> judge.check("Who wrote Hamlet?", "Shakespeare", "William Shakespeare").correct  # doctest: +SKIP
        True
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Create a judge.

        Args:
            base_url: The server, with or without the trailing ``/v1``
                (``http://host:8000`` and ``http://host:8000/v1`` both work).
            model: The judge model's name on that server.
            api_key: Bearer token; defaults to ``$OPENAI_API_KEY`` when set.
            timeout: Seconds per request.
            max_retries: Extra attempts on transport errors, 429 and 5xx replies.
            transport: An httpx transport (tests pass ``httpx.MockTransport``).
        """
        from tinyact.models.engines.openai import OpenAIEngine

        url = base_url.rstrip("/")
        api_root = url if url.endswith("/v1") else url + "/v1"
        self.url = api_root + "/chat/completions"
        self.model = model
        http_client = None
        if transport is not None:
            import httpx

            http_client = httpx.Client(transport=transport)
        self._engine = OpenAIEngine(model, base_url=api_root, api_key=api_key, timeout=timeout,
                                    max_retries=max_retries, vllm_extensions=False, http_client=http_client)

    def ask(self, question: str, prediction: str, gold: Any) -> bool:
        """Ask the judge; True when its reply starts with "yes".

        Raises:
            EngineError: The server could not be reached or replied badly.
        """
        from tinyact.schema import Message, SamplingParams

        golds = gold if isinstance(gold, (list, tuple)) else [gold]
        prompt = JUDGE_PROMPT.format(question=question, gold=" / ".join(map(str, golds)), prediction=prediction)
        try:
            (reply,), = self._engine.generate([[Message(role="user", content=prompt)]],
                                              sampling=SamplingParams(temperature=0.0, max_tokens=4))
        except EngineError as e:
            raise EngineError(f"judge {self.model!r}: {e}") from None
        return re.match(r"\W*yes\b", reply.text.strip().lower()) is not None

    def check(self, question: str, prediction: str | None, gold: Any) -> Score:
        """Grade one prediction; the EM/F1 score is kept in ``details``."""
        base = check_qa(prediction, gold)
        if prediction is None:
            return Score(correct=False, value=0.0, metric="llm_judge", details=base.details)
        answer = extract_qa_answer(prediction) or prediction.strip()
        # an exact match needs no judge call
        ok = bool(base.correct) or self.ask(question, answer, gold)
        return Score(
            correct=ok,
            value=float(ok),
            metric="llm_judge",
            extracted=answer,
            details={**base.details, "judge_model": self.model},
        )

    def close(self) -> None:
        self._engine.close()
