"""The CodeAct step loop as a LangGraph StateGraph."""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph

from tinyact.agents.nodes import (
    AgentContext,
    after_observe,
    after_propose,
    after_select,
    finish,
    observe,
    prepare,
    propose,
    select,
)
from tinyact.agents.state import AgentState

__all__ = ["build_graph"]


def build_graph(checkpointer: Any = None) -> Any:
    """Compile the loop: prepare -> propose -> select -> observe -> (finish | propose).

    The compiled graph holds no live resources: pass an ``AgentContext`` as
    ``context=`` when invoking it, so one graph serves many runs (and embeds in
    an application's graph as a subgraph).
    """
    builder = StateGraph(AgentState, context_schema=AgentContext)
    builder.add_node("prepare", prepare)
    builder.add_node("propose", propose)
    builder.add_node("select", select)
    builder.add_node("observe", observe)
    builder.add_node("finish", finish)
    builder.add_edge(START, "prepare")
    builder.add_edge("prepare", "propose")
    builder.add_conditional_edges("propose", after_propose, ["select", "finish"])
    builder.add_conditional_edges("select", after_select, ["observe", "finish"])
    builder.add_conditional_edges("observe", after_observe, ["propose", "finish"])
    builder.add_edge("finish", END)
    return builder.compile(checkpointer=checkpointer)
