"""The module-4 agent: MCP servers' tools behind the approval gate, driven by module 3's loop.

    agent = McpAgent(srv, bridge, gate)
    t = agent.ask("What time is it in New York?", tools=["time__get_current_time"],
                  tool_choice="required")
    t.answer, t.results                     # a module-3 Transcript

Nothing here runs a tool: the loop hands every call to the one `ToolExecutor`, whose registry
is the gate-guarded one (`ApprovalGate.guard`), with the gate as its decision hook. `tools=`
offers only some tools for one question: a 135M model picks better among two tools than among
twenty, and a shorter prompt is faster on a CPU.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from ..connect.batch import at_once
from ..tools.approval import ApprovalGate
from ..tools.executor import ToolExecutor
from ..tools.loop import ToolChoice, ToolLoop, Transcript
from ..tools.registry import ToolRegistry
from ..tools.schema import ToolSpec
from .bridge import McpBridge

if TYPE_CHECKING:
    from openai import OpenAI

    from ..server import Server

SYSTEM_PROMPT = (
    "You are ACME Corp's customer support assistant. Use the tools to answer. "
    "The documents folder is {folder}; it holds {folder}/customer_faq.txt (support hours, "
    "returns, contact) and {folder}/products.txt (product prices). Time zones are IANA names "
    "such as America/New_York, America/Los_Angeles, Europe/London, Asia/Tokyo. "
    "Answer briefly, using only facts the tools returned."
)


class McpAgent:
    """Questions answered with MCP tools; every tool call passes the gate."""

    def __init__(self, server: Server | None, bridge: McpBridge, gate: ApprovalGate, *,
                 servers: Sequence[str] | None = None, folder: str = "",
                 client: OpenAI | None = None, model: str | None = None,
                 system_prompt: str | None = None, max_tokens: int = 160,
                 max_rounds: int = 4) -> None:
        self.server = server
        self.bridge = bridge
        self.gate = gate
        self.registry = gate.guard(bridge.registry(servers))
        self.executor = ToolExecutor(self.registry, decide=gate.executor_hook)
        self.client = client
        self.model = model
        self.system_prompt = system_prompt or SYSTEM_PROMPT.format(folder=folder or ".")
        self.max_tokens = max_tokens
        self.max_rounds = max_rounds
        self.transcripts: list[Transcript] = []
        self._lock = threading.Lock()

    def loop(self, tools: Sequence[str] | None = None,
             narrow: dict[str, dict[str, list[Any]]] | None = None) -> ToolLoop:
        """A module-3 ToolLoop over some of the gated tools (all by default), some narrowed."""
        executor = self.executor
        if tools is not None or narrow:
            names = list(tools) if tools is not None else self.registry.names
            chosen = {name: self.registry.get(name) for name in names}
            for name, choices in (narrow or {}).items():
                if name not in chosen:
                    continue
                chosen[name] = narrowed(chosen[name], choices)
            executor = ToolExecutor(ToolRegistry(_tools=chosen), decide=self.gate.executor_hook,
                                    log=self.executor.log)
        return ToolLoop(self.server, executor, client=self.client, model=self.model,
                        system_prompt=self.system_prompt, max_tokens=self.max_tokens,
                        max_rounds=self.max_rounds)

    def ask(self, prompt: str, *, tools: Sequence[str] | None = None,
            tool_choice: ToolChoice | Sequence[ToolChoice] = "auto", then: ToolChoice = "none",
            narrow: dict[str, dict[str, list[Any]]] | None = None, **kwargs: Any
            ) -> Transcript:
        """One question, through the loop; after the forced rounds, `then` ("none": answer).

        `narrow={"filesystem__read_text_file": {"path": [a, b]}}` offers that tool with only
        its required parameters, `path` limited to the listed values (see `narrowed`).
        """
        transcript = self.loop(tools, narrow).run(prompt, tool_choice=tool_choice, then=then,
                                                  **kwargs)
        with self._lock:
            self.transcripts.append(transcript)
        return transcript

    def ask_many(self, questions: Sequence[dict[str, Any]], *, workers: int = 4,
                 progress: bool = True) -> list[Transcript]:
        """Several independent questions at once (vLLM batches them), with a progress bar;
        each dict holds `prompt` and the keyword arguments of `ask`. Results in the order
        given."""
        return at_once([partial(self.ask, q["prompt"],
                                **{k: v for k, v in q.items() if k != "prompt"})
                        for q in questions],
                       workers=workers, desc="questions", unit="question", progress=progress)


def narrowed(spec: ToolSpec, choices: dict[str, list[Any]]) -> ToolSpec:
    """The same tool (same gated function, same identity) offered with a smaller schema: only
    its required parameters, and `choices` turned into enums.

    Why: vLLM's strict mode makes a call *valid*, not *sensible*; a 135M model fills optional
    numbers it should leave out and invents file names. An enum lets it choose only among
    real values; which one it picks is still the model's choice. The schema is only ever
    narrowed, so whatever passes it also passes the server's own schema.
    """
    params = spec.parameters
    keep = [k for k in params["properties"] if k in choices or not _optional(
        params["properties"][k])]
    props = {}
    for key in keep:
        sub = dict(params["properties"][key])
        if key in choices:
            sub["enum"] = list(choices[key])
        props[key] = sub
    new = {**params, "properties": props, "required": keep}
    return replace(spec, parameters=new)


def _optional(node: dict[str, Any]) -> bool:
    return any(isinstance(o, dict) and o.get("type") == "null" for o in node.get("anyOf", []))
