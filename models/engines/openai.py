"""OpenAIEngine: any OpenAI-compatible chat-completions server over HTTP (vLLM's first)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Self

from tinyact.models.engines.base import Conversation, OnToken, StopFilter, apply_stop, normalize_call
from tinyact.schema import Completion, SamplingParams

if TYPE_CHECKING:
    import httpx

__all__ = ["DEFAULT_BASE_URL", "OpenAIEngine"]

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
# fields of a request body that the OpenAI spec names; the rest travel as the SDK's ``extra_body``
_SPEC_FIELDS = frozenset({"model", "messages", "n", "max_tokens", "temperature", "top_p", "seed", "stop"})


def _base_url(base_url: str | None) -> str:
    url = base_url or os.environ.get("TINYACT_ENGINE_URL") or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    return url.rstrip("/")


class OpenAIEngine:
    """``Engine`` over an OpenAI-compatible ``/chat/completions`` endpoint.

    The conversations of one ``generate`` call are sent concurrently (one
    request each, ``n`` samples per request), so a server that batches (vLLM)
    sees them together. A prefix is continued with vLLM's
    ``continue_final_message`` / ``add_generation_prompt`` request fields.
    Requests go through the official ``openai`` client, whose retry policy is
    the one tinyact uses: connection errors, timeouts, 408/409/429 and 5xx
    answers are retried with exponential backoff and jitter (0.5 s doubling
    up to 8 s; a ``Retry-After`` header wins); anything else, or the last
    failure, raises ``EngineError``.

    Args:
        model: the model name the server serves; a URL instead means "the
            server at this URL, its first model" (``load_engine("openai:http://...")``).
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1``; default
            ``$TINYACT_ENGINE_URL``, then ``$OPENAI_BASE_URL``, then ``DEFAULT_BASE_URL``.
        api_key: sent as a bearer token; default ``$OPENAI_API_KEY`` (none if unset).
        timeout: seconds per request (connect, read, write each).
        max_retries: further tries after the first, for retryable failures.
        concurrency: requests in flight at once.
        vllm_extensions: ask for vLLM's per-choice ``token_ids`` and
            ``stop_reason`` (exact token counts, EOS told apart from a stop
            string); turn off for a server that rejects unknown fields.
        http_client: an ``httpx.Client`` for the ``openai`` client to send
            through (tests pass one with ``httpx.MockTransport``); default: one
            with ``concurrency`` connections.

    Example:
        >>> engine = OpenAIEngine("smollm2-135m", base_url="http://127.0.0.1:8000/v1")  # doctest: +SKIP
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        concurrency: int = 32,
        vllm_extensions: bool = True,
        http_client: httpx.Client | None = None,
    ) -> None:
        import httpx
        import openai

        from tinyact.errors import ConfigError

        if max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {max_retries}")
        if concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
        if model.startswith(("http://", "https://")):
            base_url, model = model, ""
        self.base_url = _base_url(base_url)
        self.max_retries = max_retries
        self.concurrency = concurrency
        self.vllm_extensions = vllm_extensions
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        if http_client is None:
            limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
            http_client = openai.DefaultHttpxClient(limits=limits)
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=key or "EMPTY",  # the SDK insists on one; a local server without --api-key ignores it
            timeout=httpx.Timeout(timeout),
            max_retries=max_retries,
            http_client=http_client,
        )
        self.model_name = model or self._first_model()

    # ----------------------------------------------------------------- public

    def generate(
        self,
        conversations: Sequence[Conversation],
        *,
        n: int = 1,
        sampling: SamplingParams | None = None,
        stop: Sequence[str] = (),
        prefix: str | Sequence[str | None] | None = None,
    ) -> list[list[Completion]]:
        convs, sampling, prefixes = normalize_call(conversations, n, sampling, prefix)
        if not convs:
            return []
        samples = 1 if sampling.greedy else n
        stops = [s for s in stop if s]
        bodies = [self._body(c, p, samples, sampling, stops) for c, p in zip(convs, prefixes)]
        if len(bodies) == 1:
            replies = [self._chat(bodies[0])]
        else:
            with ThreadPoolExecutor(min(self.concurrency, len(bodies))) as pool:
                replies = list(pool.map(self._chat, bodies))
        results = []
        for reply, pre in zip(replies, prefixes):
            row = self._completions(reply, pre, samples, stops)
            results.append(row if samples == n else row * n)
        return results

    def generate_stream(
        self, conversation: Conversation, *, n: int = 1, sampling: SamplingParams | None = None,
        stop: Sequence[str] = (), prefix: str | None = None, on_token: OnToken,
    ) -> list[Completion]:
        """``generate`` for one conversation with ``stream: true``: choice 0's deltas go
        to ``on_token`` as the server sends them (no retries once a stream has begun)."""
        (conv,), sampling, (pre,) = normalize_call([conversation], n, sampling, prefix)
        samples = 1 if sampling.greedy else n
        stops = [s for s in stop if s]
        body = self._body(conv, pre, samples, sampling, stops)
        body.pop("return_token_ids", None)
        spec = {k: v for k, v in body.items() if k in _SPEC_FIELDS}
        extra = {k: v for k, v in body.items() if k not in _SPEC_FIELDS}
        texts: dict[int, list[str]] = {}
        ends: dict[int, dict[str, Any]] = {}
        usage: dict[str, Any] = {}
        filtered = StopFilter(on_token, stops)

        def stream() -> None:
            nonlocal usage
            chunks = self._client.chat.completions.create(
                **spec, extra_body=extra, stream=True, stream_options={"include_usage": True}
            )
            with chunks:
                for chunk in chunks:
                    data = chunk.model_dump()
                    usage = data.get("usage") or usage
                    for choice in data.get("choices") or []:
                        i = choice.get("index") or 0
                        piece = (choice.get("delta") or {}).get("content") or ""
                        texts.setdefault(i, []).append(piece)
                        if i == 0:
                            filtered(piece)
                        if choice.get("finish_reason"):
                            ends[i] = choice

        with self._sdk_errors("/chat/completions"):
            stream()
        filtered.flush()
        reply = {"usage": usage, "choices": [
            {"index": i, "message": {"content": "".join(parts)}, "finish_reason": ends.get(i, {}).get("finish_reason"),
             "stop_reason": ends.get(i, {}).get("stop_reason")} for i, parts in texts.items()]}
        row = self._completions(reply, pre, samples, stops)
        return row if samples == n else row * n

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- private

    def _body(
        self, messages: list[Any], prefix: str | None, samples: int, sampling: SamplingParams, stops: list[str]
    ) -> dict[str, Any]:
        msgs = [m.model_dump() for m in messages]
        body: dict[str, Any] = {"model": self.model_name, "messages": msgs, "n": samples,
                                "max_tokens": sampling.max_tokens, "temperature": sampling.temperature}
        if not sampling.greedy:
            body["top_p"] = sampling.top_p
            if sampling.seed is not None:
                body["seed"] = sampling.seed
        if stops:
            body["stop"] = stops
        if prefix is not None:
            msgs.append({"role": "assistant", "content": prefix})
            body.update(continue_final_message=True, add_generation_prompt=False)
        if self.vllm_extensions:
            body["return_token_ids"] = True
        return body

    def _completions(self, reply: dict[str, Any], prefix: str | None, samples: int, stops: list[str]) -> list[Completion]:
        from tinyact.errors import EngineError

        choices = sorted(reply.get("choices") or [], key=lambda c: c.get("index", 0))
        if len(choices) < samples:
            raise EngineError(
                f"{self.base_url} returned {len(choices)} choice(s) for n={samples} (model {self.model_name!r}):"
                " unexpected format"
            )
        usage = reply.get("usage") or {}
        prompt_ids = reply.get("prompt_token_ids")
        prompt_tokens = len(prompt_ids) if prompt_ids is not None else int(usage.get("prompt_tokens") or 0)
        # Without per-choice token ids, share the reply's total among the choices.
        shared = int(usage.get("completion_tokens") or 0) // samples
        out = []
        for choice in choices[:samples]:
            text = (choice.get("message") or {}).get("content") or ""
            # A server that leaves the stop string in the text: cut it here.
            text, cut = apply_stop(text, stops)
            stop_reason = choice.get("stop_reason")
            if cut is not None:
                reason, matched = "stop", cut
            elif choice.get("finish_reason") == "length":
                reason, matched = "length", None
            elif isinstance(stop_reason, str) and stop_reason in stops:
                reason, matched = "stop", stop_reason
            else:
                # "stop" without a stop string named: the model ended (EOS).
                reason, matched = "eos", None
            token_ids = choice.get("token_ids")
            out.append(Completion(
                text=(prefix or "") + text,
                finish_reason=reason,
                stop=matched,
                prompt_tokens=prompt_tokens,
                completion_tokens=len(token_ids) if token_ids is not None else shared,
            ))
        return out

    def _first_model(self) -> str:
        from tinyact.errors import EngineError

        data = self._call("/models", lambda: self._client.models.list()).get("data") or []
        if not data:
            raise EngineError(f"{self.base_url}/models lists no model")
        return str(data[0]["id"])

    def _chat(self, body: dict[str, Any]) -> dict[str, Any]:
        spec = {k: v for k, v in body.items() if k in _SPEC_FIELDS}
        extra = {k: v for k, v in body.items() if k not in _SPEC_FIELDS}
        return self._call("/chat/completions", lambda: self._client.chat.completions.create(**spec, extra_body=extra))

    def _call(self, path: str, request: Any) -> dict[str, Any]:
        """Run one SDK request (its retries included); its failures become one clear ``EngineError``."""
        from tinyact.errors import EngineError

        url = f"{self.base_url}{path}"
        with self._sdk_errors(path):
            reply = request()
        if not hasattr(reply, "model_dump"):  # the SDK hands a non-JSON body back as text
            raise EngineError(f"{url} answered with a body that is not a JSON reply: {str(reply)[:100]!r}")
        return reply.model_dump()

    @contextlib.contextmanager
    def _sdk_errors(self, path: str) -> Iterator[None]:
        """The SDK's failures (after its retries) as one clear ``EngineError``; a stream is not
        retried once it has begun."""
        import openai

        from tinyact.errors import EngineError

        url, tries = f"{self.base_url}{path}", self.max_retries + 1
        try:
            yield
        except openai.APITimeoutError as e:
            raise EngineError(f"{url} timed out after {tries} tries ({type(e.__cause__ or e).__name__})") from None
        except openai.APIConnectionError as e:
            raise EngineError(
                f"cannot reach the model server at {self.base_url} ({e.__cause__ or e}); "
                "is it running? Start one with `tinyact serve-model NAME`"
            ) from None
        except openai.APIStatusError as e:
            raise EngineError(f"{url} answered {e.status_code}: {_error_text(e.response)}") from None
        except (openai.APIResponseValidationError, ValueError):  # ValueError: a JSON body that does not parse
            raise EngineError(f"{url} answered with a body that is not a JSON reply") from None


def _error_text(resp: Any) -> str:
    try:
        data = resp.json()
    except ValueError:
        return resp.text[:300].strip() or resp.reason_phrase
    err = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(err, dict):
        return str(err.get("message") or err)[:300]
    return str(err)[:300]
