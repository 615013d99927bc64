"""Multi-turn chat through the real ``openai`` client against uvicorn on 127.0.0.1:
a conversation is one agent thread, so turn 2 uses a variable turn 1 defined."""

from __future__ import annotations

import httpx
import pytest
import openai

from tests.serve.helpers import uvicorn_server
from tinyact.models.engines.scripted import ScriptedEngine, act
from tinyact.serve import RunService, ServerConfig

SCRIPTS = {
    "multiply 6 by 7": [act("x = 6 * 7\nprint(x)"), act("final_answer(x)")],
    "now double it": [act("final_answer(x * 2)"), act("final_answer('x is gone')")],
}


class Recording(ScriptedEngine):
    """The scripted engine, remembering each conversation it was shown."""

    def __init__(self) -> None:
        super().__init__(SCRIPTS)
        self.shown: list[list[str]] = []

    def generate(self, conversations, **kw):
        self.shown += [[m.content for m in conv] for conv in conversations]
        return super().generate(conversations, **kw)


def ask(client: openai.OpenAI, messages: list[dict], **extra):
    resp = client.chat.completions.create(model="scripted", messages=messages, extra_body=extra or None)
    return resp.choices[0].message.content, resp.model_extra["tinyact"]


def test_two_turns_share_the_sandbox_and_the_context():
    engine = Recording()
    service = RunService(engine, config=ServerConfig(exec_timeout=60))
    with uvicorn_server(service) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        u1 = {"role": "user", "content": "multiply 6 by 7"}
        answer1, ext1 = ask(client, [{"role": "system", "content": "be brief"}, u1])
        assert answer1 == "42" and ext1["conversation"].startswith("conv_")

        # The OpenAI way: resend the whole chat. Turn 2 continues turn 1's thread.
        history = [u1, {"role": "assistant", "content": answer1}, {"role": "user", "content": "now double it"}]
        answer2, ext2 = ask(client, history)
        assert answer2 == "84" and ext2["conversation"] == ext1["conversation"]
        assert ext2["steps"][0]["error"] is None and len(ext2["steps"]) == 1
        shown = engine.shown[-1]
        assert shown[1] == "New task:\nmultiply 6 by 7" and shown[-1] == "New task:\nnow double it"
        assert "x = 6 * 7" in "".join(shown)  # turn 1's steps are the model's context

        # The server-side way: send the id and only the new message.
        answer3, ext3 = ask(client, [{"role": "user", "content": "now double it"}], conversation=ext1["conversation"])
        assert answer3 == "84" and ext3["conversation"] == ext1["conversation"]

        # A history the server did not build (an edited answer): a new thread, the history as
        # context only, so turn 1's variable does not exist there.
        edited = [u1, {"role": "assistant", "content": "41"}, {"role": "user", "content": "now double it"}]
        answer4, ext4 = ask(client, edited)
        assert ext4["conversation"] != ext1["conversation"]
        assert "NameError" in ext4["steps"][0]["error"] and answer4 == "x is gone"
        assert engine.shown[-1][1:4] == ["New task:\nmultiply 6 by 7", "41", "New task:\nnow double it"]

        # Streaming keeps the thread too; every chunk names the conversation.
        chunks = list(client.chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": "now double it"}], stream=True,
            extra_body={"conversation": ext1["conversation"]}))
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == "84"
        assert {c.model_extra["tinyact"]["conversation"] for c in chunks if c.model_extra.get("tinyact")} \
            == {ext1["conversation"]}

        # /v1/runs takes the same id.
        r = httpx.post(f"{url}/v1/runs", json={"task": "now double it", "conversation": ext1["conversation"]},
                       timeout=60)
        assert r.status_code == 200 and r.json()["answer"] == 84


def test_tinyact_alias_and_answers_beyond_64_bits(tmp_path):
    """model="tinyact" names whatever is served; 2**100 survives the checkpointer (msgpack cannot hold it)."""
    engine = ScriptedEngine({"big": [act("final_answer(2**100)")]})
    service = RunService(engine, config=ServerConfig(db=str(tmp_path / "api.sqlite"), exec_timeout=60))
    with uvicorn_server(service) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        resp = client.chat.completions.create(model="tinyact", messages=[{"role": "user", "content": "big"}])
        assert resp.choices[0].message.content == str(2**100) and resp.model == "scripted"
        with pytest.raises(openai.UnprocessableEntityError, match="not served here"):
            client.chat.completions.create(model="tinyact-2", messages=[{"role": "user", "content": "big"}])
