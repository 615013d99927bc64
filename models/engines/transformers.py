"""TransformersEngine: local generation with Hugging Face transformers, CPU or GPU."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from tinyact.models.engines.base import Conversation, OnToken, StopFilter, apply_stop, normalize_call
from tinyact.schema import Completion, Message, SamplingParams

__all__ = ["TransformersEngine", "render_prompt"]


def render_prompt(tokenizer: Any, messages: Sequence[Message], prefix: str | None) -> str:
    """The chat-template text of ``messages``; with ``prefix``, ready to continue it."""
    msgs = [m.model_dump() for m in messages]
    if prefix is None:
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    msgs.append({"role": "assistant", "content": prefix})
    return tokenizer.apply_chat_template(
        msgs, tokenize=False, add_generation_prompt=False, continue_final_message=True
    )


class TransformersEngine:
    """Batched generation with ``model.generate``.

    The ``n`` samples of every conversation come from one call
    (``num_return_sequences``), not ``n`` calls. ``temperature == 0`` is greedy
    (and ``n`` greedy samples are one sample repeated).

    Args:
        model: a catalog name, a local folder, or a hub id where a hub is reachable.
        device: "cpu", "cuda", ... ; default: cuda when available.
        dtype: torch dtype name; default float32 on CPU, bfloat16 on GPU.
    """

    name = "transformers"

    def __init__(self, model: str, *, device: str | None = None, dtype: str | None = None) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as e:
            raise ImportError(f"TransformersEngine needs: pip install 'tinyact[models]' ({e})") from None
        from transformers.utils import logging as hf_logging

        from tinyact.models.catalog import resolve_model

        hf_logging.disable_progress_bar()

        self.model_name = model
        self.path = resolve_model(model)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        torch_dtype = getattr(torch, dtype) if dtype else (torch.float32 if self.device == "cpu" else torch.bfloat16)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(self.path, dtype=torch_dtype).to(self.device)
        self.model.eval()
        # One generate at a time: torch already uses every core, and HF's
        # generate is not safe to call concurrently on one model.
        self._lock = threading.Lock()

    def generate(
        self,
        conversations: Sequence[Conversation],
        *,
        n: int = 1,
        sampling: SamplingParams | None = None,
        stop: Sequence[str] = (),
        prefix: str | Sequence[str | None] | None = None,
    ) -> list[list[Completion]]:
        import torch

        convs, sampling, prefixes = normalize_call(conversations, n, sampling, prefix)
        if not convs:
            return []
        prompts = [render_prompt(self.tokenizer, c, p) for c, p in zip(convs, prefixes)]
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        batch = batch.to(self.device)
        samples = 1 if sampling.greedy else n
        with self._lock, torch.inference_mode():
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
            out = self.model.generate(**batch, **self._generate_kwargs(sampling, samples, stop))
        prompt_len = batch["input_ids"].shape[1]
        generated = out[:, prompt_len:].tolist()
        prompt_counts = batch["attention_mask"].sum(dim=1).tolist()
        eos_ids = self._eos_ids()
        results: list[list[Completion]] = []
        for i, pre in enumerate(prefixes):
            row: list[Completion] = []
            for j in range(samples):
                tokens = generated[i * samples + j]
                row.append(self._completion(tokens, eos_ids, stop, pre, int(prompt_counts[i])))
            results.append(row if samples == n else row * n)
        return results

    def generate_stream(
        self, conversation: Conversation, *, n: int = 1, sampling: SamplingParams | None = None,
        stop: Sequence[str] = (), prefix: str | None = None, on_token: OnToken,
    ) -> list[Completion]:
        """``generate`` for one conversation; the first sample's text goes to ``on_token``
        as it is decoded (a ``TextStreamer`` on the first row of the batch)."""
        import torch
        from transformers import TextStreamer

        (conv,), sampling, (pre,) = normalize_call([conversation], n, sampling, prefix)
        filtered = StopFilter(on_token, stop)

        class FirstRow(TextStreamer):
            """TextStreamer takes one sequence; with n samples, report the first."""

            def put(self, value: Any) -> None:
                if value.dim() > 1 or (not self.next_tokens_are_prompt and value.shape[0] > 1):
                    value = value[:1]
                super().put(value)

            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                filtered(text)

        batch = self.tokenizer([render_prompt(self.tokenizer, conv, pre)], return_tensors="pt",
                               add_special_tokens=False).to(self.device)
        samples = 1 if sampling.greedy else n
        streamer = FirstRow(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        with self._lock, torch.inference_mode():
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
            out = self.model.generate(**batch, **self._generate_kwargs(sampling, samples, stop), streamer=streamer)
        filtered.flush()
        generated = out[:, batch["input_ids"].shape[1]:].tolist()
        prompt_tokens = int(batch["attention_mask"].sum())
        eos_ids = self._eos_ids()
        row = [self._completion(generated[j], eos_ids, stop, pre, prompt_tokens) for j in range(samples)]
        return row if samples == n else row * n

    def _generate_kwargs(self, sampling: SamplingParams, samples: int, stop: Sequence[str]) -> dict[str, Any]:
        greedy = sampling.greedy
        kwargs: dict[str, Any] = dict(
            max_new_tokens=sampling.max_tokens,
            do_sample=not greedy,
            num_return_sequences=samples,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        if not greedy:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if stop:
            kwargs.update(stop_strings=list(stop), tokenizer=self.tokenizer)
        return kwargs

    def _eos_ids(self) -> set[int]:
        ids = self.model.generation_config.eos_token_id
        ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
        ids.add(self.tokenizer.eos_token_id)
        ids.add(self.tokenizer.pad_token_id)
        return {i for i in ids if i is not None}

    def _completion(
        self, tokens: list[int], eos_ids: set[int], stop: Sequence[str], prefix: str | None, prompt_tokens: int
    ) -> Completion:
        end = next((k for k, t in enumerate(tokens) if t in eos_ids), None)
        body = tokens if end is None else tokens[:end]
        text = self.tokenizer.decode(body, skip_special_tokens=True)
        cut, matched = apply_stop(text, stop)
        if matched:
            reason = "stop"
        elif end is not None:
            reason = "eos"
        else:
            reason = "length"
        return Completion(
            text=(prefix or "") + cut,
            finish_reason=reason,
            stop=matched,
            prompt_tokens=prompt_tokens,
            completion_tokens=len(body) + (1 if reason == "eos" else 0),
        )
