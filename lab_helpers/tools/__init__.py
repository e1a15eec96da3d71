"""Tools from typed Python functions, the one executor that runs them, and the tool loop.

    from lab_helpers.support import SupportDesk
    from lab_helpers.tools import ToolExecutor, ToolLoop, acme_registry, approve_all

    desk = SupportDesk()
    executor = ToolExecutor(acme_registry(desk), decide=approve_all)
    loop = ToolLoop(srv, executor)
    transcript = loop.run("Where is order ORD-78432?", tool_choice="required")

- `schema`: a function's signature and docstring -> a strict OpenAI tool definition;
- `registry`: tools by name, argument validation (jsonschema) before anything runs;
- `executor`: `execute(call) -> result`, the only place a tool runs, with the decision hook
  for writes (module 4's approval gate goes there);
- `loop`: model -> tool calls -> results -> model ..., every `tool_choice`, streaming, a round
  limit; the `Transcript` it returns is what the transcript widget shows;
- `evaluate`: valid-call / right-tool / right-argument rates over labelled requests;
- `extract`: the tools narrowed to one message (ids, e-mails, phones and texts as enums of
  its parts), a router and per-argument choices: what makes a small model's calls right;
- `approval`: the approval gate (module 4) the executor's decision hook answers through.

May import: `connect`, `support` (ACME's tools), `errors`, `paths`.
"""

from __future__ import annotations

from ..support import WRITE_TOOLS, SupportDesk
from .approval.decisions import (
    Decide,
    Decision,
    PendingCall,
    approve_all,
    ask_in_notebook,
    deny_all,
)
from .executor import ToolExecutor, ToolResult
from .loop import Round, ToolLoop, ToolLoopError, Transcript, choice_label, named
from .registry import InvalidArguments, ToolCall, ToolCallError, ToolRegistry, UnknownTool
from .schema import ToolDefinitionError, ToolSpec, tool_spec


def acme_registry(desk: SupportDesk) -> ToolRegistry:
    """The five ACME support tools of one desk; the two that write are marked as such."""
    return ToolRegistry.of(desk.tool_functions(), writes=WRITE_TOOLS)


__all__ = [
    "Decide", "Decision", "Round", "ToolLoop", "ToolLoopError", "Transcript", "choice_label",
    "named", "InvalidArguments", "PendingCall", "ToolCall", "ToolCallError",
    "ToolDefinitionError", "ToolExecutor", "ToolRegistry", "ToolResult", "ToolSpec",
    "UnknownTool", "acme_registry", "approve_all", "ask_in_notebook", "deny_all", "tool_spec",
]
