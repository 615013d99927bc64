"""Running one code action inside the sandbox, and the names the code sees.

Standard library only. ``run_code`` executes code in the session's globals and
turns what happened into the fields of a result message; ``death_error`` says
what happened to an executor that died without answering.
"""

from __future__ import annotations

import ast
import json
import linecache
import os
import signal
import traceback

from .capture import clean
from .protocol import too_deep

CODE_FILENAME = "<code>"


class FinalAnswerException(BaseException):
    """Raised by final_answer(); a BaseException so `except Exception` cannot swallow it."""

    def __init__(self, value) -> None:
        super().__init__(value)
        self.value = value


class ToolError(RuntimeError):
    """A host-side tool failed; the message says why."""


def final_answer(answer=None):
    raise FinalAnswerException(answer)


def make_tool(name: str, call_host):
    """The sandbox-side function of host tool `name`; `call_host(msg)` returns the host's reply."""

    def tool(*args, **kwargs):
        try:
            msg = {"op": "tool", "name": name, "args": list(args), "kwargs": kwargs}
            json.dumps(msg)
        except (TypeError, ValueError, RecursionError) as e:
            raise TypeError(f"arguments of tool {name!r} must be JSON-serializable: {e}") from None
        if too_deep(msg, 0):
            raise TypeError(f"arguments of tool {name!r} nest too deeply for the channel")
        reply = call_host(msg)
        if reply.get("ok"):
            return reply.get("value")
        raise ToolError(reply.get("error", "tool failed"))

    tool.__name__ = tool.__qualname__ = name
    tool.__doc__ = f"Host-side tool {name!r}: arguments and result travel as JSON."
    return tool


def compile_code(code: str):
    """Compile `code`; split off a last expression statement to report its value."""
    tree = ast.parse(code, CODE_FILENAME, "exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = compile(ast.Expression(tree.body.pop().value), CODE_FILENAME, "eval")
    return compile(tree, CODE_FILENAME, "exec"), last


def run_code(code: str, namespace: dict, out_limit: int) -> tuple[dict, tuple | None]:
    """Execute `code` in `namespace`: (result fields, error as (type, message, traceback) or None).

    A process the code forked that falls through to here exits instead of answering.
    """
    me = os.getpid()
    linecache.cache[CODE_FILENAME] = (len(code), None, code.splitlines(True), CODE_FILENAME)
    result: dict = {}
    error = None
    try:
        body, last = compile_code(code)
        exec(body, namespace)
        if last is not None:
            value = eval(last, namespace)
            if value is not None:
                result["value"] = clean(truncate(repr(value), out_limit))
    except FinalAnswerException as e:
        result["called_final_answer"] = True
        result["final_answer"] = json_safe(e.value)
    except BaseException as e:  # noqa: BLE001 - the user's error is the result
        if os.getpid() != me:
            os._exit(1)
        error = (type(e).__name__, safe_str(e), format_tb(e))
    if os.getpid() != me:  # a process the code forked fell through to here
        os._exit(0)
    return result, error


def json_safe(value):
    """`value` when it travels as JSON within the channel's bounds, else its (cut) repr."""
    try:
        json.dumps(value)
        if not too_deep(value):
            return value
    except (TypeError, ValueError, RecursionError):
        pass
    try:
        return truncate(repr(value), 10_000)
    except BaseException as e:  # noqa: BLE001 - a repr that fails or recurses
        return f"<unrepresentable {type(value).__name__}: {safe_str(e)}>"


def truncate(s: str, n: int) -> str:
    return s if len(s) <= n else s[:n] + f"... [truncated, {len(s)} chars]"


def safe_str(e: BaseException) -> str:
    try:
        return str(e)
    except BaseException:  # noqa: BLE001
        return f"<unprintable {type(e).__name__}>"


def format_tb(e: BaseException) -> str:
    """The traceback, keeping only frames of the user's code."""
    try:
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == CODE_FILENAME]
        lines = ["Traceback (most recent call last):\n"] if frames else []
        lines += traceback.format_list(frames)
        lines += traceback.format_exception_only(type(e), e)
        return "".join(lines)
    except BaseException:  # noqa: BLE001
        return f"{type(e).__name__}\n"


def death_error(status, limits: dict) -> tuple[str, str, str]:
    """An error for an executor that died without reporting (`status` from waitpid)."""
    if status is None:
        return ("SandboxError", "the executing process vanished", "")
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        if sig == signal.SIGXCPU:
            return ("CPUTimeLimitError", f"CPU time limit of {limits['cpu_s']} s exceeded (SIGXCPU)", "")
        if sig == signal.SIGSEGV:
            return ("CrashError", "the code crashed (SIGSEGV; a stack overflow from deep recursion?)", "")
        if sig == signal.SIGKILL:
            return (
                "KilledError",
                f"the code was killed (SIGKILL; CPU limit {limits['cpu_s']} s or memory "
                f"limit {limits['memory_mb']} MB?)",
                "",
            )
        return ("CrashError", f"the code was terminated by {name}", "")
    code = os.WEXITSTATUS(status)
    return ("ProcessExit", f"the code ended its process with exit status {code} (os._exit?)", "")


def warm_up() -> None:
    """Touch, in a fresh fork, the memory an execute will write to, so the
    copy-on-write page faults happen now rather than on the critical path."""
    try:
        msg = json.loads(json.dumps({"op": "exec", "id": 0, "code": "_ = 1\n_", "timeout": 1.0}))
        body, last = compile_code(msg["code"])
        clean(repr(last)).encode()
        json.dumps({"op": "result", "stdout": "", "stderr": "", "truncated": False})
        ast.literal_eval("1")
    except Exception:  # noqa: BLE001
        pass
