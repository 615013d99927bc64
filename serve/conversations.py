"""Conversations: a chat maps to one agent thread across turns.

Every turn is its own run (own id, trajectory, events); what makes turns one
conversation is what the next run starts from:

- ``history``: the earlier turns as the model saw them (task, thoughts, code,
  observations), between the system prompt and the new task;
- ``setup``: the code the earlier turns committed, replayed into the new run's
  fresh sandbox before its first step, so a variable from turn 1 exists in
  turn 2 (replay, as after a restart: code runs again, so random values and
  clock reads differ; tools are called again).

Each finished turn stores a snapshot (insert-only) in the runs database
(SQLite or PostgreSQL, so any replica continues any conversation): its
conversation id, the transcript the client sees (user messages and the
answers given) and the state above. A request finds its snapshot by the conversation id it sends, or,
without one, by its history (the messages before its last user message): a
client that resends the whole chat, as OpenAI clients do, continues the
thread it built, and a regenerated or edited turn branches from the snapshot
its history matches. A history that matches no snapshot starts a new thread
with that history as plain-text context (no sandbox state).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tinyact.serve.store import to_json

if TYPE_CHECKING:
    from tinyact.serve.store import RunStore

__all__ = ["ConversationStore", "Turn", "answer_text", "conversation_schema", "transcript_of"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_conversations (
    seq {serial},
    id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    transcript TEXT NOT NULL,
    history TEXT NOT NULL,
    setup TEXT NOT NULL,
    run_id TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS api_conversations_by_id ON api_conversations (key_id, id, seq DESC);
CREATE INDEX IF NOT EXISTS api_conversations_by_digest ON api_conversations (key_id, digest, seq DESC);
"""

SERIAL = {"sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",
          "postgres": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"}


def conversation_schema(dialect: str) -> list[str]:
    """The ``api_conversations`` statements for "sqlite" or "postgres" (the run store sets them up)."""
    return [x.strip() for x in SCHEMA.format(serial=SERIAL[dialect]).split(";") if x.strip()]


Transcript = list[list[str]]
"""[[role, text], ...]: the user messages and the answers, as the client sees them."""


def answer_text(answer: Any) -> str:
    """An answer as the chat message content (JSON for non-strings)."""
    if answer is None:
        return ""
    return answer if isinstance(answer, str) else json.dumps(answer)


def transcript_of(messages: list[Any]) -> Transcript:
    """The user and assistant messages of a chat request (system, developer and tool ones don't count)."""
    return [[m.role, m.text()] for m in messages if m.role in ("user", "assistant")]


@dataclass
class Turn:
    """Where a new run of a conversation starts from."""

    id: str
    transcript: Transcript = field(default_factory=list)
    """The conversation before this turn."""
    history: list[dict] = field(default_factory=list)
    setup: list[str] = field(default_factory=list)
    continued: bool = False
    """True when it continues a stored thread (sandbox state included)."""

    def to_json(self) -> dict:
        return {"id": self.id, "transcript": self.transcript, "history": self.history, "setup": self.setup,
                "continued": self.continued}


class ConversationStore:
    """The ``api_conversations`` table, beside the runs in the run store's database: one snapshot per finished turn."""

    def __init__(self, store: RunStore) -> None:
        self._store = store

    def resolve(self, key_id: str, conversation: str | None, prior: Transcript) -> Turn:
        """The turn a request with this id (or none) and this history continues or starts."""
        row = None
        if conversation is not None:
            if prior:
                row = self._one("key_id = ? AND id = ? AND digest = ?", (key_id, conversation, _digest(prior)))
            else:  # the client sends only the new message: continue the latest turn
                row = self._one("key_id = ? AND id = ?", (key_id, conversation))
        elif prior:
            row = self._one("key_id = ? AND digest = ?", (key_id, _digest(prior)))
        if row is not None:
            return Turn(id=row["id"], transcript=json.loads(row["transcript"]), history=json.loads(row["history"]),
                        setup=json.loads(row["setup"]), continued=True)
        return Turn(id=conversation or "conv_" + uuid.uuid4().hex, transcript=prior, history=_as_context(prior))

    def record(self, key_id: str, turn: Turn, run_id: str, task: str, answer: Any,
               messages: list[dict], code: list[str]) -> None:
        """Store the snapshot after ``turn``: its messages and code appended to what it started from."""
        transcript = [*turn.transcript, ["user", task], ["assistant", answer_text(answer)]]
        self._store._n(
            "INSERT INTO api_conversations (id, key_id, digest, transcript, history, setup, run_id, created_at)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (turn.id, key_id, _digest(transcript), to_json(transcript), to_json([*turn.history, *messages]),
             to_json([*turn.setup, *code]), run_id, time.time()),
        )

    def _one(self, where: str, args: tuple) -> dict | None:
        rows = self._store._q(f"SELECT * FROM api_conversations WHERE {where} ORDER BY seq DESC LIMIT 1", args)
        return rows[0] if rows else None


def _digest(transcript: Transcript) -> str:
    return hashlib.sha256(json.dumps(transcript, ensure_ascii=False).encode()).hexdigest()


def _as_context(prior: Transcript) -> list[dict]:
    """A history the server did not build: the turns as plain messages (the user's as tasks)."""
    from tinyact.agents.nodes import task_message

    return [{"role": role, "content": task_message(text) if role == "user" else text} for role, text in prior]
