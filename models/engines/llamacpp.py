"""LlamaCppEngine: GGUF models on llama.cpp (llama-cpp-python's low-level API), the CPU engine for small models."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from tinyact.models.engines.base import Conversation, OnToken, StopFilter, apply_stop, normalize_call
from tinyact.models.engines.llamacpp_lib import (
    default_threads,
    load_library,
    make_sampler,
    meta_value,
    rss_bytes,
    sample_from,
    token_piece,
    token_text,
)
from tinyact.schema import Completion, SamplingParams

__all__ = ["LlamaCppEngine", "default_threads"]

@dataclass
class _Slot:
    """A KV-cache sequence that keeps a prompt (and its first sample) for later calls."""

    seq: int
    tokens: list[int] = field(default_factory=list)
    used: int = 0
    logits: Any = None
    """The next-token logits after ``tokens[:logits_at]`` (a numpy copy)."""
    logits_at: int = -1
    prompt_len: int = 0
    """How much of ``tokens`` was the last call's prompt (the rest: what its first sample generated)."""


@dataclass
class _Seq:
    """One sample being decoded."""

    seq: int
    sampler: Any
    pos: int
    tokens: list[int] = field(default_factory=list)
    text: bytes = b""
    fed: int = 0
    reason: str | None = None
    stop: str | None = None
    on_text: Any = None
    """Called with each token's bytes as it is accepted (the streamed sample)."""


class LlamaCppEngine:
    """Generation on llama.cpp from a GGUF file, as shipped (Q4 weights, no conversion).

    - **Prompt caching.** The KV cache keeps ``cache_slots`` prompts (with the
      first sample of each). A call reuses the longest cached token prefix of
      its prompt and evaluates only the rest: an agent's next step (the same
      conversation, grown) and its next task (the same system prompt) skip
      most of the prefill. Slots are evicted least recently used; all of them
      share one unified KV cache of ``n_ctx`` cells, so shared prefixes are
      stored once.
    - **n samples in one batch.** The prompt is evaluated once, its KV cells are
      shared with ``n`` sequences (``llama_memory_seq_cp``), and the ``n``
      sequences are decoded together, one batch per token, each with its own
      sampler (seeded ``seed + i`` when a seed is given). Several conversations
      in one call are decoded in the same batches, up to ``max_sequences``.
    - **Thread-safe.** One model, one context: concurrent calls are serialized.

    ``temperature == 0`` is greedy (``n`` greedy samples are one sample repeated).

    Args:
        model: a catalog name (its verified GGUF), a ``.gguf`` file, or a folder with one.
        n_ctx: KV-cache cells shared by every sequence (prompt + completion of
            the longest call must fit); default min(model's training context, 16384).
        n_threads: CPU threads; default ``$TINYACT_LLAMACPP_THREADS``, else the cores idle at load time.
        n_batch: prompt tokens evaluated per ``llama_decode``.
        n_ubatch: tokens per compute step within a batch (default ``n_batch``).
        n_threads_batch: threads for batches of more than one token (the prefill, k>1
            decoding); default ``n_threads``. llama.cpp uses ``n_threads`` for one-token batches.
        flash_attn: "auto" (llama.cpp decides: on for CPUs), "on" or "off".
        cache_slots: prompts kept in the KV cache.
        max_sequences: sequences decoded together (samples over all conversations).
    """

    name = "llamacpp"

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        n_batch: int = 512,
        n_ubatch: int | None = None,
        n_threads_batch: int | None = None,
        flash_attn: str = "auto",
        cache_slots: int = 4,
        max_sequences: int = 16,
    ) -> None:
        from tinyact.errors import ConfigError, ModelError
        from tinyact.models.catalog import resolve_gguf

        if cache_slots < 1 or max_sequences < 1 or n_batch < 1 or (n_ubatch or 1) < 1 or (n_threads_batch or 1) < 1:
            raise ConfigError("cache_slots, max_sequences, n_batch, n_ubatch and n_threads_batch must be >= 1")
        if flash_attn not in ("auto", "on", "off"):
            raise ConfigError(f"flash_attn must be auto, on or off, not {flash_attn!r}")
        self.path = resolve_gguf(model)
        self.model_name = os.fspath(model)
        llama = self._lib = load_library()
        self.n_threads = n_threads or default_threads()
        self.n_threads_batch = n_threads_batch or self.n_threads
        self.flash_attn = flash_attn
        mparams = llama.llama_model_default_params()
        self._model = llama.llama_model_load_from_file(str(self.path).encode(), mparams)
        if not self._model:
            raise ModelError(f"llama.cpp could not load {self.path} (not a GGUF model it supports, or a damaged file)")
        self._ctx = None
        self._batch = None
        try:
            self._vocab = llama.llama_model_get_vocab(self._model)
            train_ctx = llama.llama_model_n_ctx_train(self._model)
            cparams = llama.llama_context_default_params()
            cparams.n_ctx = n_ctx or min(train_ctx, 16384)
            cparams.n_batch, cparams.n_ubatch = n_batch, min(n_ubatch or n_batch, n_batch)
            cparams.n_seq_max = cache_slots + max_sequences
            cparams.kv_unified = True  # one cell pool: copied prefixes share cells
            cparams.n_threads, cparams.n_threads_batch = self.n_threads, self.n_threads_batch
            cparams.flash_attn_type = {"auto": llama.LLAMA_FLASH_ATTN_TYPE_AUTO, "on": llama.LLAMA_FLASH_ATTN_TYPE_ENABLED,
                                       "off": llama.LLAMA_FLASH_ATTN_TYPE_DISABLED}[flash_attn]  # fmt: skip
            cparams.no_perf = True
            self._ctx = llama.llama_init_from_model(self._model, cparams)
            if not self._ctx:
                raise ModelError(f"llama.cpp could not create a context of {cparams.n_ctx} tokens for {self.path}")
            self._mem = llama.llama_get_memory(self._ctx)
            self.n_ctx = llama.llama_n_ctx(self._ctx)
            self.n_batch = n_batch
            self._batch = llama.llama_batch_init(max(n_batch, max_sequences), 0, 1)
            self.template = self._chat_template()
            import numpy as np

            self._n_vocab = llama.llama_vocab_n_tokens(self._vocab)
            self._candidates = np.zeros(self._n_vocab, dtype=np.dtype([("id", np.intc), ("logit", np.single),
                                                                       ("p", np.single)], align=True))  # fmt: skip
        except BaseException:
            self.close()
            raise
        self.max_sequences = max_sequences
        self._slots = [_Slot(seq=i) for i in range(cache_slots)]
        self._work = list(range(cache_slots, cache_slots + max_sequences))
        self._clock = 0
        self.stats = {"prompt_tokens": 0, "cached_tokens": 0, "generated_tokens": 0}
        """Counters since load: prompt tokens asked for, those served from the cache, tokens generated."""
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ public

    def generate(
        self,
        conversations: Sequence[Conversation],
        *,
        n: int = 1,
        sampling: SamplingParams | None = None,
        stop: Sequence[str] = (),
        prefix: str | Sequence[str | None] | None = None,
    ) -> list[list[Completion]]:
        return self._generate(conversations, n=n, sampling=sampling, stop=stop, prefix=prefix)

    def generate_stream(
        self, conversation: Conversation, *, n: int = 1, sampling: SamplingParams | None = None,
        stop: Sequence[str] = (), prefix: str | None = None, on_token: OnToken,
    ) -> list[Completion]:
        """``generate`` for one conversation; its first sample's text goes to ``on_token`` as it is
        decoded (bytes decoded incrementally, so a character split over tokens arrives whole; never
        a stop string or what follows it)."""
        import codecs

        filtered = StopFilter(on_token, stop)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        (row,) = self._generate([conversation], n=n, sampling=sampling, stop=stop, prefix=prefix,
                                on_text=lambda piece: filtered(decoder.decode(piece)))
        filtered(decoder.decode(b"", final=True))
        filtered.flush()
        return row

    def _generate(
        self, conversations: Sequence[Conversation], *, n: int, sampling: SamplingParams | None,
        stop: Sequence[str], prefix: str | Sequence[str | None] | None, on_text: Any = None,
    ) -> list[list[Completion]]:
        from tinyact.errors import EngineError

        convs, sampling, prefixes = normalize_call(conversations, n, sampling, prefix)
        if not convs:
            return []
        if self._ctx is None:
            raise EngineError("this LlamaCppEngine is closed")
        samples = 1 if sampling.greedy else n
        prompts = [self.tokenize(self.template.render(c, p)) for c, p in zip(convs, prefixes)]
        trained = self._lib.llama_model_n_ctx_train(self._model)
        for i, toks in enumerate(prompts):  # n_ctx is shared by all sequences; each is also bound by training
            if len(toks) >= min(self.n_ctx, trained):
                raise EngineError(
                    f"conversation {i}: the prompt has {len(toks)} tokens, more than this engine's context of "
                    f"{self.n_ctx} (LlamaCppEngine(n_ctx=...)) or the {trained} the model was trained on"
                )
        # Units of work: (conversation, first sample index, samples), at most max_sequences samples each.
        units = [(i, j, min(samples - j, self.max_sequences)) for i in range(len(convs))
                 for j in range(0, samples, self.max_sequences)]  # fmt: skip
        results: list[list[Completion]] = [[] for _ in convs]
        stops = [s for s in stop if s]
        with self._lock:
            while units:
                group, width = [], 0
                while units and len(group) < len(self._slots) and width + units[0][2] <= self.max_sequences:
                    group.append(units.pop(0))
                    width += group[-1][2]
                streamed = on_text if group[0][:2] == (0, 0) else None  # conversation 0, sample 0
                done = self._run_group([(prompts[i], j, m) for i, j, m in group], sampling, stops, streamed)
                for (i, _, _), row in zip(group, done):
                    results[i].extend(self._completion(s, prefixes[i], len(prompts[i]), stops) for s in row)
        return [row if samples == n else row * n for row in results]

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` (special tokens parsed; BOS added only where the model wants it and the text lacks it)."""
        llama = self._lib
        data = text.encode()
        add_bos = bool(llama.llama_vocab_get_add_bos(self._vocab)) and not (
            self.template.bos_token and text.startswith(self.template.bos_token)
        )
        size = len(data) + 8
        buf = (llama.llama_token * size)()
        count = llama.llama_tokenize(self._vocab, data, len(data), buf, size, add_bos, True)
        if count < 0:
            size = -count
            buf = (llama.llama_token * size)()
            count = llama.llama_tokenize(self._vocab, data, len(data), buf, size, add_bos, True)
        return list(buf[:count])

    def memory(self) -> dict[str, int]:
        """Bytes: the model's weights, the KV cache as allocated, and this process's resident set."""
        llama = self._lib
        layers = llama.llama_model_n_layer(self._model)
        head_dim = llama.llama_model_n_embd(self._model) // max(1, llama.llama_model_n_head(self._model))
        kv = self.n_ctx * layers * 2 * llama.llama_model_n_head_kv(self._model) * head_dim * 2  # K and V, f16
        return {"model_bytes": int(llama.llama_model_size(self._model)), "kv_cache_bytes": kv, "rss_bytes": rss_bytes()}

    def clear_cache(self) -> None:
        """Forget every cached prompt (the next call prefills from scratch)."""
        with self._lock:
            self._lib.llama_memory_clear(self._mem, True)
            for slot in self._slots:
                slot.tokens, slot.logits, slot.logits_at = [], None, -1

    def close(self) -> None:
        """Free the context and the model (also done at garbage collection)."""
        llama = getattr(self, "_lib", None)
        if llama is None:
            return
        if getattr(self, "_batch", None) is not None:
            llama.llama_batch_free(self._batch)
        self._batch = None
        if getattr(self, "_ctx", None):
            llama.llama_free(self._ctx)
        self._ctx = None
        if getattr(self, "_model", None):
            llama.llama_model_free(self._model)
        self._model = None

    def __del__(self) -> None:
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ generation

    def _run_group(self, units: list[tuple[list[int], int, int]], sampling: SamplingParams,
                   stops: list[str], on_text: Any = None) -> list[list[_Seq]]:  # fmt: skip
        """Prefill each unit's prompt (cache first), then decode all their samples together;
        ``on_text`` gets the first unit's first sample's bytes as they come."""
        llama = self._lib
        pinned: list[_Slot] = []
        rows: list[list[_Seq]] = []
        free = list(self._work)
        try:
            for prompt, first, m in units:
                slot, logits = self._prefill(prompt, pinned)
                pinned.append(slot)
                row = []
                for j in range(m):
                    seq = slot.seq if j == 0 else free.pop()
                    if j:
                        llama.llama_memory_seq_rm(self._mem, seq, -1, -1)
                        llama.llama_memory_seq_cp(self._mem, slot.seq, seq, -1, -1)
                    s = _Seq(seq=seq, sampler=make_sampler(llama, sampling, first + j), pos=len(prompt),
                             on_text=on_text if not rows and j == 0 else None)
                    self._accept(s, sample_from(llama, s.sampler, logits, self._candidates), sampling, stops)
                    row.append(s)
                rows.append(row)
            active = [s for row in rows for s in row if s.reason is None]
            while active:
                for i, s in enumerate(active):
                    self._put(i, s.tokens[-1], s.pos, s.seq, True)
                self._batch.n_tokens = len(active)
                if not self._decode(pinned):
                    for s in active:
                        s.reason = "length"  # the KV cache is full
                    break
                for i, s in enumerate(active):
                    s.fed += 1
                    s.pos += 1
                    self._accept(s, llama.llama_sampler_sample(s.sampler, self._ctx, i), sampling, stops)
                active = [s for s in active if s.reason is None]
        finally:
            for row in rows:
                for s in row:
                    llama.llama_sampler_free(s.sampler)
            for seq in self._work:
                llama.llama_memory_seq_rm(self._mem, seq, -1, -1)
        for slot, (prompt, _, _), row in zip(pinned, units, rows):
            slot.tokens = prompt + row[0].tokens[: row[0].fed]  # what sample 0 left in the slot's cells
            slot.prompt_len = len(prompt)
        self.stats["generated_tokens"] += sum(len(s.tokens) for row in rows for s in row)
        return rows

    def _prefill(self, prompt: list[int], pinned: list[_Slot]) -> tuple[_Slot, Any]:
        """Put ``prompt`` into a slot, reusing the longest cached prefix; return (slot, next-token logits).

        A prompt cached whole (the same call again, or another round of its
        samples) reuses the logits saved when it was evaluated, so that a
        seeded call gives the same samples whether or not its prompt was cached.
        """
        from tinyact.errors import EngineError

        llama = self._lib
        whole = [s for s in self._slots if s.logits_at == len(prompt) and s.tokens[: len(prompt)] == prompt]
        if whole:
            source = max(whole, key=lambda s: (s not in pinned, s.used))
            target = source if source not in pinned else self._evictable(pinned, source)
            if target is not source:
                llama.llama_memory_seq_rm(self._mem, target.seq, -1, -1)
                llama.llama_memory_seq_cp(self._mem, source.seq, target.seq, 0, len(prompt))
                target.logits, target.logits_at = source.logits, source.logits_at
            llama.llama_memory_seq_rm(self._mem, target.seq, len(prompt), -1)
            target.tokens = list(prompt)
            self._clock += 1
            target.used = self._clock
            self.stats["prompt_tokens"] += len(prompt)
            self.stats["cached_tokens"] += len(prompt)
            return target, target.logits
        limit = len(prompt) - 1  # the last token is evaluated: its logits start the samples

        def common(slot: _Slot) -> int:
            k, toks = 0, slot.tokens
            top = min(limit, len(toks))
            while k < top and toks[k] == prompt[k]:
                k += 1
            return k

        best = max(self._slots, key=lambda s: (common(s), s not in pinned, s.used))
        keep = common(best)
        if best not in pinned and keep >= min(len(best.tokens), max(best.prompt_len, 1)):
            # the cached text is a prefix of the prompt, or differs only in what its last call
            # generated (an agent's next step: the reply was cut at a stop string and re-rendered):
            # extend it in place, not in a copy that would evict another conversation's slot
            target = best
        else:
            target = self._evictable(pinned, best)
            if target is not best:
                llama.llama_memory_seq_rm(self._mem, target.seq, -1, -1)
                if keep:
                    llama.llama_memory_seq_cp(self._mem, best.seq, target.seq, 0, keep)
        llama.llama_memory_seq_rm(self._mem, target.seq, keep, -1)
        target.tokens = prompt[:keep]
        target.logits, target.logits_at = None, -1
        self._clock += 1
        target.used = self._clock
        self.stats["prompt_tokens"] += len(prompt)
        self.stats["cached_tokens"] += keep
        pos = keep
        while pos < len(prompt):
            chunk = prompt[pos : pos + self.n_batch]
            for i, tok in enumerate(chunk):
                self._put(i, tok, pos + i, target.seq, pos + i == len(prompt) - 1)
            self._batch.n_tokens = len(chunk)
            if not self._decode([*pinned, target]):
                target.tokens, target.logits_at = [], -1
                llama.llama_memory_seq_rm(self._mem, target.seq, -1, -1)
                raise EngineError(f"the KV cache ({self.n_ctx} cells) is full; give LlamaCppEngine a larger n_ctx")
            pos += len(chunk)
            target.tokens = prompt[:pos]
        import numpy as np

        row = llama.llama_get_logits_ith(self._ctx, len(chunk) - 1)
        target.logits = np.ctypeslib.as_array(row, shape=(self._n_vocab,)).copy()
        target.logits_at = len(prompt)
        return target, target.logits

    def _evictable(self, pinned: list[_Slot], spare: _Slot) -> _Slot:
        """The slot to overwrite: an empty one, else the least recently used, ``spare`` only if nothing else."""
        unpinned = [s for s in self._slots if s not in pinned]
        others = [s for s in unpinned if s is not spare] or unpinned
        return min(others, key=lambda s: (len(s.tokens) > 0, s.used))

    def _decode(self, keep: list[_Slot]) -> bool:
        """``llama_decode`` the batch; when the cache is full, evict unpinned slots and retry. False: still full."""
        from tinyact.errors import EngineError

        llama = self._lib
        while True:
            code = llama.llama_decode(self._ctx, self._batch)
            if code == 0:
                return True
            if code != 1:
                raise EngineError(f"llama_decode failed with code {code}")
            victims = [s for s in self._slots if s not in keep and s.tokens]
            if not victims:
                return False
            victim = min(victims, key=lambda s: s.used)
            llama.llama_memory_seq_rm(self._mem, victim.seq, -1, -1)
            victim.tokens, victim.logits_at = [], -1

    def _put(self, i: int, token: int, pos: int, seq: int, logits: bool) -> None:
        b = self._batch
        b.token[i] = token
        b.pos[i] = pos
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = seq
        b.logits[i] = logits

    def _accept(self, s: _Seq, token: int, sampling: SamplingParams, stops: list[str]) -> None:
        """Record a sampled token; set ``reason`` when the sample is finished."""
        s.tokens.append(token)
        if self._lib.llama_vocab_is_eog(self._vocab, token):
            s.reason = "eos"
            return
        piece = token_piece(self._lib, self._vocab, token)
        s.text += piece
        if s.on_text is not None:
            s.on_text(piece)
        if stops:
            window = s.text[-(len(piece) + 4 * max(map(len, stops)) + 8) :].decode(errors="ignore")
            if any(x in window for x in stops):
                s.reason = "stop"
                return
        if len(s.tokens) >= sampling.max_tokens or s.pos >= self.n_ctx:
            s.reason = "length"

    def _completion(self, s: _Seq, prefix: str | None, prompt_tokens: int, stops: list[str]) -> Completion:
        text, matched = apply_stop(s.text.decode(errors="replace"), stops)
        reason = "stop" if matched else (s.reason if s.reason != "stop" else "length")
        return Completion(text=(prefix or "") + text, finish_reason=reason, stop=matched,
                          prompt_tokens=prompt_tokens, completion_tokens=len(s.tokens))  # fmt: skip

    def _chat_template(self) -> Any:
        from tinyact.models.engines.chat_template import CHATML, ChatTemplate

        llama = self._lib
        return ChatTemplate(
            meta_value(llama, self._model, "tokenizer.chat_template") or CHATML,
            bos_token=token_text(llama, self._vocab, llama.llama_vocab_bos(self._vocab)),
            eos_token=token_text(llama, self._vocab, llama.llama_vocab_eos(self._vocab)),
        )
