"""The CodeAct controller: prompts, parsing, the LangGraph step loop, voting, trajectories."""

from tinyact.agents.agent import Agent, AgentResult, Token
from tinyact.agents.config import AgentConfig
from tinyact.agents.consistency import outcome_key, select_candidates
from tinyact.agents.graph import build_graph
from tinyact.agents.nodes import AgentContext
from tinyact.agents.parsing import parse_action
from tinyact.agents.trajectory import append_jsonl, committed_code, read_jsonl, to_messages

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentContext",
    "AgentResult",
    "Token",
    "append_jsonl",
    "build_graph",
    "committed_code",
    "outcome_key",
    "parse_action",
    "read_jsonl",
    "select_candidates",
    "to_messages",
]
