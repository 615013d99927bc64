"""The raw llama.cpp reference of bench/engine.py, measured side by side with LlamaCppEngine in one process.

k=1 goes through llama-cpp-python's own high-level ``Llama`` (``create_completion``,
greedy, its built-in prefix reuse for the warm step); k=8 through a minimal
low-level loop, issue 16's method: one prompt evaluation, ``llama_memory_seq_cp``
to k sequences, the k sequences decoded together one ``llama_decode`` per token,
each with its own sampler (top_p -> temperature -> dist(seed + i), the chain
LlamaCppEngine builds). Both use the engine's GGUF, threads, ``n_batch`` and
flash-attention setting; the raw contexts are sized for the step (4096 cells).

Wall time on a loaded machine mostly measures the other processes, so the
process's CPU time (all its threads; with more than one thread it includes
llama.cpp's spinning at barriers) is reported beside it.

Each repetition runs our engine and the reference on the same prompt back to
back (the order alternates between repetitions), so that the machine's load
hits both alike; the report is the median of the per-repetition ratios.
"""

from __future__ import annotations

import ctypes
import statistics
import time
from typing import Any

from tinyact.schema import Message, SamplingParams


class RawLlamaCpp:
    """llama-cpp-python as a user would drive it, for the same GGUF and threads as an engine."""

    def __init__(self, path: str, n_threads: int, n_threads_batch: int, n_batch: int = 512,
                 flash_attn: bool = True, n_ctx: int = 4096) -> None:  # fmt: skip
        import llama_cpp
        from llama_cpp import Llama

        self.lib = llama_cpp
        self.llm = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, n_threads_batch=n_threads_batch,
                         n_batch=n_batch, n_ubatch=n_batch, flash_attn=flash_attn, verbose=False)  # fmt: skip
        self.n_ctx, self.n_batch, self.flash_attn = n_ctx, n_batch, flash_attn
        self.n_threads, self.n_threads_batch = n_threads, n_threads_batch
        self._k_ctx: dict[int, Any] = {}

    def tokenize(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode(), add_bos=self.llm._model.add_bos_token(), special=True)

    def step(self, prompt: list[int], max_tokens: int, stop: list[str], cold: bool) -> tuple[float, int]:
        """One greedy completion through ``Llama.create_completion``; cold: forget the previous prompt first."""
        if cold:
            self.llm.reset()
        started = time.perf_counter()
        out = self.llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, stop=stop or None)
        return time.perf_counter() - started, out["usage"]["completion_tokens"]

    def _context(self, k: int) -> Any:
        lib = self.lib
        if k not in self._k_ctx:
            params = lib.llama_context_default_params()
            params.n_ctx, params.n_batch, params.n_ubatch, params.n_seq_max = self.n_ctx, self.n_batch, self.n_batch, k
            params.n_threads, params.n_threads_batch = self.n_threads, self.n_threads_batch
            params.flash_attn_type = lib.LLAMA_FLASH_ATTN_TYPE_ENABLED if self.flash_attn else lib.LLAMA_FLASH_ATTN_TYPE_DISABLED
            params.kv_unified = True  # one cell pool: the copied prompt's cells are shared, not duplicated
            params.no_perf = True
            ctx = lib.llama_init_from_model(self.llm.model, params)
            self._k_ctx[k] = (ctx, lib.llama_batch_init(max(self.n_batch, k), 0, k))
        return self._k_ctx[k]

    def k_step(self, prompt: list[int], k: int, sampling: SamplingParams, stop: list[str]) -> tuple[float, int]:
        """k samples of one cold prompt: evaluate once, copy the cache to k sequences, decode them together."""
        lib = self.lib
        ctx, batch = self._context(k)
        mem = lib.llama_get_memory(ctx)
        vocab = lib.llama_model_get_vocab(self.llm.model)
        lib.llama_memory_clear(mem, True)
        started = time.perf_counter()
        for pos in range(0, len(prompt), self.n_batch):
            chunk = prompt[pos : pos + self.n_batch]
            for i, tok in enumerate(chunk):
                batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.seq_id[i][0] = tok, pos + i, 1, 0
                batch.logits[i] = pos + i == len(prompt) - 1
            batch.n_tokens = len(chunk)
            assert lib.llama_decode(ctx, batch) == 0
        for s in range(1, k):
            lib.llama_memory_seq_cp(mem, 0, s, -1, -1)
        samplers = []
        for s in range(k):
            chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
            if sampling.top_p < 1.0:
                lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_p(sampling.top_p, 1))
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_temp(sampling.temperature))
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_dist(((sampling.seed or 0) + s) % 0xFFFFFFFF))
            samplers.append(chain)
        buf = ctypes.create_string_buffer(256)
        live = list(range(k))
        idx = {s: batch.n_tokens - 1 for s in live}  # every sample starts from the prompt's last logits
        text = {s: b"" for s in live}
        count = {s: 0 for s in live}
        pos = len(prompt)
        generated = 0
        while live:
            nxt = []
            for s in live:
                tok = lib.llama_sampler_sample(samplers[s], ctx, idx[s])
                count[s] += 1
                generated += 1
                if lib.llama_vocab_is_eog(vocab, tok):
                    continue
                n = lib.llama_token_to_piece(vocab, tok, buf, len(buf), 0, False)
                text[s] += buf.raw[:n]
                if count[s] >= sampling.max_tokens or any(x.encode() in text[s][-64:] for x in stop):
                    continue
                nxt.append((s, tok))
            live = [s for s, _ in nxt]
            for i, (s, tok) in enumerate(nxt):
                batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.seq_id[i][0], batch.logits[i] = tok, pos, 1, s, 1
                idx[s] = i
            batch.n_tokens = len(nxt)
            if nxt:
                assert lib.llama_decode(ctx, batch) == 0
            pos += 1
        for chain in samplers:
            lib.llama_sampler_free(chain)
        return time.perf_counter() - started, generated

    def close(self) -> None:
        for ctx, batch in self._k_ctx.values():
            self.lib.llama_batch_free(batch)
            self.lib.llama_free(ctx)
        self._k_ctx.clear()
        self.llm.close()


def measure_vs_raw(spec: str, model: str, runs: int, max_tokens: int, stop: list[str],
                   reference: bool = True) -> dict[str, Any]:  # fmt: skip
    """LlamaCppEngine (``llamacpp@THREADS[,key=value...]``) against RawLlamaCpp, interleaved, in this process.

    ``reference=False``: our engine's cold k=1 and k=8 steps only (to try engine options for the k=8 cost).
    """
    import os

    from tinyact.agents.prompts import render_system_prompt
    from tinyact.bench.engine import TASKS
    from tinyact.models.engines import load_engine

    name, _, rest = spec.partition("@")
    threads, *options = rest.split(",") if rest else [""]
    kwargs: dict[str, Any] = {"n_threads": int(threads)} if threads else {}
    for opt in options:
        key, _, value = opt.partition("=")
        kwargs[key] = value if key == "flash_attn" else int(value)
    engine = load_engine(model, engine=name, **kwargs)
    raw = None
    if reference:
        raw = RawLlamaCpp(engine.path, engine.n_threads, engine.n_threads_batch, n_batch=engine.n_batch,
                          flash_attn=engine.flash_attn != "off")  # "auto" is on for CPUs
    system, _ = render_system_prompt("full", [])
    convs = [[Message(role="system", content=system), Message(role="user", content=t)] for t in TASKS]
    texts = [engine.template.render(c, None) for c in convs]
    ours_toks = engine.tokenize(texts[0])
    assert raw is None or raw.tokenize(texts[0]) == ours_toks, "the engine and the reference tokenize differently"
    greedy = SamplingParams(temperature=0, max_tokens=max_tokens)
    keys = ["step cold", "step warm", "k=8 step cold"] if raw else ["step cold", "k=8 step cold"]
    sides = ("ours", "raw") if raw else ("ours",)
    times: dict[str, dict[str, list[float]]] = {w: {k: [] for k in keys} for w in sides}
    cpu: dict[str, dict[str, list[float]]] = {w: {k: [] for k in keys} for w in sides}
    tokens: dict[str, dict[str, list[int]]] = {w: {k: [] for k in keys} for w in sides}
    load: list[float] = []

    def ours(key: str, i: int, run: int) -> tuple[float, int]:
        if key != "step warm":
            engine.clear_cache()
        n, sampling = (8, SamplingParams(temperature=0.4, top_p=0.8, max_tokens=max_tokens, seed=run)) \
            if key.startswith("k=8") else (1, greedy)  # fmt: skip
        started = time.perf_counter()
        out = engine.generate([convs[i]], n=n, sampling=sampling, stop=stop)[0]
        return time.perf_counter() - started, sum(c.completion_tokens for c in out)

    def reference(key: str, i: int, run: int) -> tuple[float, int]:
        assert raw is not None
        prompt = raw.tokenize(texts[i])
        if key.startswith("k=8"):
            return raw.k_step(prompt, 8, SamplingParams(temperature=0.4, top_p=0.8, max_tokens=max_tokens, seed=run), stop)
        return raw.step(prompt, max_tokens, stop, cold=key == "step cold")

    engine.generate([[Message(role="user", content="hi")]], sampling=SamplingParams(max_tokens=4))  # warm-up
    if raw:
        raw.step(raw.tokenize("hi"), 4, [], cold=True)
    for run in range(runs):
        order = [("ours", ours), ("raw", reference)] if run % 2 == 0 else [("raw", reference), ("ours", ours)]
        order = [o for o in order if o[0] in sides]
        load.append(os.getloadavg()[0])
        for who, fn in order:
            for key, i in (("step cold", 2 * run % 4), ("step warm", (2 * run + 1) % 4), ("k=8 step cold", 2 * run % 4)):
                if key not in keys:
                    continue
                c = time.process_time()
                s, t = fn(key, i, run)
                cpu[who][key].append(time.process_time() - c)
                times[who][key].append(s)
                tokens[who][key].append(t)
    result: dict[str, Any] = {"engine": spec, "threads": engine.n_threads, "prompt_tokens": len(ours_toks),
                              "load_avg": statistics.median(load), "times": times, "cpu": cpu, "tokens": tokens}  # fmt: skip
    for key in keys if raw else ():
        ratios = [a / b for a, b in zip(times["ours"][key], times["raw"][key])]
        result[f"{key} ratio"] = statistics.median(ratios)
        result[f"{key} cpu ratio"] = statistics.median(a / b for a, b in zip(cpu["ours"][key], cpu["raw"][key]))
    for who in sides:
        k8 = [a / b for a, b in zip(times[who]["k=8 step cold"], times[who]["step cold"])]
        result[f"{who} k8/k1"] = statistics.median(k8)
        result[f"{who} k8/k1 cpu"] = statistics.median(a / b for a, b in zip(cpu[who]["k=8 step cold"], cpu[who]["step cold"]))
    if raw:
        raw.close()
    engine.close()
    return result
