"""A deterministic stand-in teacher: answers "What is <expr>?" by writing code that computes <expr>.

Kept as source text too (FAKE_ENGINE_SOURCE) so a subprocess can define the same engine.
"""

FAKE_ENGINE_SOURCE = r'''
import re, time
from tinyact.models.engines.base import apply_stop, as_messages, prefixes_for
from tinyact.schema import Completion


class ExprEngine:
    """Writes `final_answer(<expr>)` for "What is <expr>?"; "ERR" in the task: first a failing step."""

    name = "expr"
    model_name = "expr-teacher"

    def __init__(self, delay=0.0, fail_after=None):
        self.delay, self.fail_after, self.calls, self.prefixes = delay, fail_after, 0, []

    def generate(self, conversations, *, n=1, sampling=None, stop=(), prefix=None):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("engine went away")
        time.sleep(self.delay)
        convs = [as_messages(c) for c in conversations]
        out = []
        for conv, pre in zip(convs, prefixes_for(prefix, len(convs))):
            self.prefixes.append(pre)
            task = conv[1].content
            expr = re.search(r"What is (.*)\?", task).group(1)
            observed = any(m.content.startswith("Observation:") for m in conv[2:])
            if "ERR" in task and not observed:
                body = "Thought: try.\nCode:\n```py\nprint(undefined_name)\n```<end_code>"
            elif "NOPARSE" in task and not observed:
                body = "Thought: I will just say it."
            else:
                body = f"Thought: compute it.\nCode:\n```py\nfinal_answer({expr})\n```<end_code>"
            cut, matched = apply_stop(body, stop)
            text = (pre or "") + cut
            out.append([Completion(text=text, finish_reason="stop" if matched else "eos", stop=matched,
                                   prompt_tokens=10, completion_tokens=5)] * n)
        return out
'''

exec(FAKE_ENGINE_SOURCE)
