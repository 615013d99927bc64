"""The llama.cpp side of LlamaCppEngine: loading the library, threads, samplers, tokens and metadata over ctypes."""

from __future__ import annotations

import ctypes
import os
import secrets
import threading
from pathlib import Path
from typing import Any

from tinyact.schema import SamplingParams

__all__ = ["default_threads", "load_library", "make_sampler", "meta_value", "rss_bytes", "sample_from",
           "token_piece", "token_text"]  # fmt: skip

_INIT_LOCK = threading.Lock()
_BACKEND_READY = False


def load_library() -> Any:
    """Import llama_cpp (quietly) and initialise its backend once per process."""
    global _BACKEND_READY
    try:
        import llama_cpp
        from llama_cpp import _logger
    except ImportError as e:
        raise ImportError(f"LlamaCppEngine needs: pip install 'tinyact[llamacpp]' ({e})") from None
    with _INIT_LOCK:
        if not _BACKEND_READY:
            if not os.environ.get("TINYACT_LLAMACPP_VERBOSE"):
                _logger.set_verbose(False)  # llama.cpp's load log only on errors
            llama_cpp.llama_backend_init()
            _BACKEND_READY = True
    return llama_cpp



def default_threads() -> int:
    """``$TINYACT_LLAMACPP_THREADS``, else the cores that are idle now (at least one).

    llama.cpp's threads meet at a spinning barrier after every operation: on an
    idle machine each extra core helps (2 threads: 1.5x faster than 1 on two
    cores), but a thread that waits for a busy core stalls all of them (on two
    cores at load 14, 2 threads were 10x *slower* than 1; README "Engines").
    """
    env = os.environ.get("TINYACT_LLAMACPP_THREADS")
    if env:
        return max(1, int(env))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        busy = round(os.getloadavg()[0])
    except OSError:
        busy = 0
    return max(1, min(cores, cores - busy))


def make_sampler(llama: Any, sampling: SamplingParams, index: int) -> Any:
    """A sampler chain for sample ``index`` of a call: greedy, or top_p -> temperature -> dist(seed + index)."""
    chain = llama.llama_sampler_chain_init(llama.llama_sampler_chain_default_params())
    if sampling.greedy:
        llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_greedy())
        return chain
    if sampling.top_p < 1.0:
        llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_top_p(sampling.top_p, 1))
    llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_temp(sampling.temperature))
    seed = (sampling.seed + index) if sampling.seed is not None else secrets.randbits(31)
    llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_dist(seed % 0xFFFFFFFF))  # 0xFFFFFFFF: "random"
    return chain


def sample_from(llama: Any, sampler: Any, logits: Any, candidates: Any) -> int:
    """Sample (and accept) a token from saved logits, as ``llama_sampler_sample`` does from a context's.

    ``candidates`` is a numpy record array laid out as ``llama_token_data``, one row per vocabulary entry.
    """
    import numpy as np

    candidates["id"] = np.arange(len(candidates), dtype=np.intc)
    candidates["logit"] = logits
    candidates["p"] = 0.0
    arr = llama.llama_token_data_array(
        data=candidates.ctypes.data_as(llama.llama_token_data_p), size=len(candidates), selected=-1, sorted=False
    )
    llama.llama_sampler_apply(sampler, ctypes.byref(arr))
    token = int(candidates["id"][arr.selected])
    llama.llama_sampler_accept(sampler, token)
    return token


def token_piece(llama: Any, vocab: Any, token: int) -> bytes:
    """The bytes a token stands for (control tokens: none)."""
    buf = ctypes.create_string_buffer(64)
    n = llama.llama_token_to_piece(vocab, token, buf, 64, 0, False)
    if n < 0:
        buf = ctypes.create_string_buffer(-n)
        n = llama.llama_token_to_piece(vocab, token, buf, -n, 0, False)
    return buf.raw[:n]


def token_text(llama: Any, vocab: Any, token: int) -> str:
    """A token's text as the vocabulary spells it (special tokens included); "" for none (-1)."""
    if token < 0:
        return ""
    return (llama.llama_vocab_get_text(vocab, token) or b"").decode(errors="replace")


def meta_value(llama: Any, model: Any, key: str) -> str | None:
    """A GGUF metadata value as text, or None when the file has no such key."""
    buf = ctypes.create_string_buffer(1 << 16)
    n = llama.llama_model_meta_val_str(model, key.encode(), buf, len(buf))
    if n < 0:
        return None
    if n >= len(buf):
        buf = ctypes.create_string_buffer(n + 1)
        llama.llama_model_meta_val_str(model, key.encode(), buf, len(buf))
    return buf.value.decode(errors="replace")


def rss_bytes() -> int:
    """This process's resident set size now (its peak where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
