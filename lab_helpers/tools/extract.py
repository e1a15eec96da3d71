"""Tool calls a small model can get right: every argument chosen among what the message says.

    narrowed = for_message(registry, "Where is my order ORD-78432?")
    narrowed.definitions()     # only the tools this message can fill, ids as enums of its spans
    best = Setup("per_field", FOR_THE_MODEL, per_field=True)
    attempt = best.run(loop, message)        # attempt.calls, attempt.requests (as sent)
    route_request(...), field_request(...), call_request(...)   # the request bodies alone

SmolLM2-135M under `required` writes a *valid* call every time, but a valid call can still be
nonsense: the wrong tool, an order id it made up, an e-mail address as a ticket's subject.
Strict schemas only say what a value looks like. Here the schema of each request also says
*which* values are possible, taken from the customer's message, so there is less to invent:

- a string parameter with a `pattern` (order id, e-mail, phone) takes a span of the message
  that matches the pattern: an enum of those spans;
- an enum parameter (a time of day, a priority, a category) takes the values the message
  names; none named: its default (or null, when it is optional);
- a number takes a number the message gives (e.g. "under $100" -> 100), else its default;
- free text (a search query, a ticket's subject) takes one of the message's phrases or
  clauses, so it quotes the customer instead of inventing (and, when the tool has an id,
  e-mail or phone parameter, not a clause that repeats that value);
- a tool whose required parameter the message cannot fill (no order id for
  `get_order_status`) is not offered at all.

Every narrowed schema is a restriction of the tool's own, so whatever passes it passes the
registry's validation too. The model still chooses: the tool (among those left) and, where
the message offers several, which span. Tool descriptions written for the model
(`FOR_THE_MODEL`), a router request (structured output `choice` over the tool names, then a
named `tool_choice`) and few-shot examples (`FEW_SHOT`: worked requests in the system prompt and
the router's prompt, none of them among the benchmark's requests) are the further steps the
benchmark measures.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import jsonschema

from .registry import ToolCall, ToolRegistry
from .schema import ToolSpec

if TYPE_CHECKING:
    from .loop import ToolLoop

# Short descriptions that say *when* to use each ACME tool, in the words a request uses.
FOR_THE_MODEL = {
    "get_order_status": "Use when the message gives an order number (ORD-12345): where the "
                        "order is, if it shipped, when it arrives.",
    "get_customer_info": "Use when the message gives an e-mail address and asks about that "
                         "customer: their account, tier or orders.",
    "schedule_callback": "Use when the customer asks to be called back on a phone number.",
    "search_products": "Use when the customer is looking for a product to buy.",
    "create_ticket": "Use when the message asks to open or file a ticket about a problem.",
}
ROUTER_PROMPT = ("Pick the one tool that handles the customer's message. Answer with the "
                 "tool's name only.\n{tools}")
# Worked examples for the model (message, tool, arguments): made up for the prompt, none of
# them among the labelled requests the benchmark scores (lab_helpers/data/tool_requests.json).
FEW_SHOT: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("Is ORD-11223 on its way?", "get_order_status", {"order_id": "ORD-11223"}),
    ("What plan is sam.lee@email.com on?", "get_customer_info",
     {"customer_email": "sam.lee@email.com", "customer_id": None}),
    ("Ring me on 555-987-6543 in the morning about my refund, please.", "schedule_callback",
     {"customer_phone": "555-987-6543", "issue_summary": "my refund",
      "preferred_time": "morning"}),
    ("Do you have running shoes?", "search_products",
     {"query": "running shoes", "category": "all", "max_results": 5, "max_price": None}),
    ("Open a ticket for sam.lee@email.com: my kettle leaks.", "create_ticket",
     {"customer_email": "sam.lee@email.com", "subject": "my kettle leaks",
      "description": "my kettle leaks", "priority": "normal"}),
)
FEW_SHOT_PROMPT = ("You are ACME's support assistant. Call the one tool that handles the "
                   "customer's message, with values taken from the message. Examples:\n"
                   "{examples}")


def few_shot_lines(*, with_arguments: bool = True) -> str:
    """FEW_SHOT as prompt lines: `Customer: ... -> tool(arguments)` (or `-> tool`)."""
    return "\n".join(
        f"Customer: {message} -> {tool}" + (f"({json.dumps(arguments)})" if with_arguments
                                            else "")
        for message, tool, arguments in FEW_SHOT)
WORD = re.compile(r"[A-Za-z0-9$][A-Za-z0-9@._%+$'-]*[A-Za-z0-9]|[A-Za-z0-9]")
NUMBER = re.compile(r"(?<![\w.-])\$?(\d+(?:\.\d+)?)(?![\w-])")
STOP = {"a", "an", "the", "and", "or", "for", "with", "under", "below", "over", "some", "any",
        "me", "my", "i", "i'm", "you", "your", "is", "are", "do", "does", "can", "could",
        "please", "show", "find", "want", "need", "looking", "of", "in", "on", "at", "to",
        "what", "what's", "which", "where", "when", "how", "have", "has", "sell", "it's",
        "that", "this", "it", "about", "someone", "yet", "let", "like", "i'd", "be",
        # words that ask for the service rather than say what it is about
        "open", "file", "ticket", "call", "callback", "back", "phone", "agent", "look", "up"}


def _clean(text: str) -> str:
    return text.strip(" \t\n.,;:!?\"'()")


def phrases(message: str) -> list[str]:
    """Runs of content words (no stop words, ids or numbers inside): "wireless headphones"."""
    out: list[str] = []
    run: list[str] = []
    for token in message.split() + [""]:
        word = _clean(token)
        plain = word.isalpha() or "-" in word and word.replace("-", "").isalpha()
        if word and plain and word.lower() not in STOP:
            run.append(word)
            if token != word and token.rstrip("\"')")[-1:] in ".,;:!?":
                out.append(" ".join(run))
                run = []
            continue
        if run:
            out.append(" ".join(run))
        run = []
    return list(dict.fromkeys(out))


def clauses(message: str) -> list[str]:
    """The message cut at punctuation (not inside an e-mail address or a number)."""
    parts = re.split(r"[,;:!?]\s+|\.\s+|[!?.]$|\s+-\s+", message.strip())
    return list(dict.fromkeys(c for c in (_clean(p) for p in parts) if c))


def _fits(value: Any, schema: Mapping[str, Any]) -> bool:
    return jsonschema.Draft202012Validator(dict(schema)).is_valid(value)


def _branches(schema: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """(the non-null schema, nullable?) of a property."""
    options = schema.get("anyOf")
    if not options:
        return dict(schema), schema.get("type") == "null"
    solid = [o for o in options if o.get("type") != "null"]
    return (dict(solid[0]) if solid else {}), len(solid) < len(options)


def values_in(message: str, schema: Mapping[str, Any]) -> list[Any]:
    """The values of `message` one parameter could take (see the module doc), best first."""
    solid, _ = _branches(schema)
    kind = solid.get("type")
    if "enum" in solid:
        words = {w.lower().rstrip("s") for w in WORD.findall(message)}
        return [v for v in solid["enum"] if str(v).lower().rstrip("s") in words]
    if kind in ("integer", "number"):
        found = [float(m.group(1)) for m in NUMBER.finditer(message)]
        found = [int(v) if kind == "integer" or v.is_integer() else v for v in found]
        return [v for v in dict.fromkeys(found) if _fits(v, solid)]
    if kind != "string":
        return []
    if "pattern" in solid:
        inner = solid["pattern"].removeprefix("^").removesuffix("$")
        found = [m.group(0) for m in re.finditer(inner, message)]
        found += [_clean(t) for t in message.split()]
    else:
        found = phrases(message) + clauses(message)
    return [v for v in dict.fromkeys(found) if v and _fits(v, solid)]


def _is_free_text(schema: Mapping[str, Any]) -> bool:
    solid, _ = _branches(schema)
    return solid.get("type") == "string" and "pattern" not in solid and "enum" not in solid


def argument_choices(spec: ToolSpec, message: str) -> dict[str, list[Any]] | None:
    """Per parameter, the values this message offers; None when a required parameter has
    none (the tool cannot be called for this message). An optional parameter the message
    does not fill gets its default, or null."""
    defaults = {name: info.default for name, info in spec.arguments_model.model_fields.items()
                if not info.is_required()}
    properties = spec.parameters.get("properties", {})
    # spans an id, e-mail or phone parameter takes: free text need not repeat them
    quoted = [v for s in properties.values() if "pattern" in _branches(s)[0]
              for v in values_in(message, s)]
    out: dict[str, list[Any]] = {}
    for name, schema in properties.items():
        found = values_in(message, schema)
        if _is_free_text(schema):
            found = [v for v in found if not any(q in v for q in quoted)] or found
        if found:
            out[name] = found
        elif name in defaults:
            default = defaults[name]
            out[name] = [getattr(default, "value", default)]
        else:
            return None
    return out


def narrow(spec: ToolSpec, choices: Mapping[str, Sequence[Any]],
           description: str | None = None) -> ToolSpec:
    """`spec` with each parameter in `choices` limited to those values (an enum; a single
    null is `{"type": "null"}`), every parameter kept (strict schemas list them all)."""
    props: dict[str, Any] = {}
    for name, schema in spec.parameters.get("properties", {}).items():
        if name not in choices:
            props[name] = schema
            continue
        values = list(choices[name])
        solid, _ = _branches(schema)
        text = {k: v for k, v in schema.items() if k == "description"}
        if values == [None]:
            props[name] = {**text, "type": "null"}
        elif None in values:
            props[name] = {**text, "anyOf": [{"type": solid.get("type", "string"),
                                              "enum": [v for v in values if v is not None]},
                                             {"type": "null"}]}
        else:
            props[name] = {**text, "type": solid.get("type", "string"), "enum": values}
    parameters = {**spec.parameters, "properties": props}
    return replace(spec, parameters=parameters,
                   description=description if description is not None else spec.description)


def for_message(registry: ToolRegistry, message: str, *,
                descriptions: Mapping[str, str] | None = None) -> ToolRegistry:
    """The tools `message` can fill, each narrowed to the message's values (same functions)."""
    out = ToolRegistry()
    for name in registry.names:
        spec = registry.get(name)
        choices = argument_choices(spec, message)
        if choices is not None:
            out.add(narrow(spec, choices, (descriptions or {}).get(name)))
    return out


def call_request(loop: ToolLoop, message: str, *, tool: str | None = None,
                 descriptions: Mapping[str, str] | None = None) -> dict[str, Any]:
    """One round over the narrowed tools: `required`, or a named `tool` (as the router chose,
    or when only one tool is left)."""
    narrowed = for_message(loop.registry, message, descriptions=descriptions)
    if tool is None and len(narrowed) == 1:
        tool = narrowed.names[0]
    if tool is not None and tool not in narrowed:
        tool = None  # the router answered something unusable: let the model pick
    names = [tool] if tool is not None else narrowed.names
    choice: Any = {"type": "function", "function": {"name": tool}} if tool else "required"
    return {**loop.request_kwargs(_messages(loop, message), choice),
            "tools": narrowed.definitions(names)}


def route_request(loop: ToolLoop, message: str, names: Sequence[str], *,
                  descriptions: Mapping[str, str] | None = None,
                  few_shot: bool = False) -> dict[str, Any]:
    """The router: a plain chat request whose answer must be one of `names` (vLLM's
    structured output `choice`, sent in `extra_body`); `few_shot` adds FEW_SHOT's messages
    with their tools to its prompt."""
    described = descriptions or {}
    listing = "\n".join(f"- {n}: {described.get(n) or loop.registry.get(n).description}"
                        for n in names)
    prompt = ROUTER_PROMPT.format(tools=listing)
    if few_shot:
        prompt += "\nExamples:\n" + few_shot_lines(with_arguments=False)
    return {"model": loop.model, "temperature": 0.0, "max_tokens": 20,
            "messages": [{"role": "system", "content": prompt},
                         {"role": "user", "content": message}],
            "extra_body": {"structured_outputs": {"choice": list(names)}}}


def route(loop: ToolLoop, message: str, *, descriptions: Mapping[str, str] | None = None,
          sent: list[dict[str, Any]] | None = None, few_shot: bool = False) -> str:
    """The tool for `message`: the only one left, or the router's choice among those left
    (the request is appended to `sent`)."""
    names = for_message(loop.registry, message).names
    if len(names) <= 1:
        return names[0] if names else ""
    kwargs = route_request(loop, message, names, descriptions=descriptions, few_shot=few_shot)
    response = _send(loop, kwargs, [] if sent is None else sent)
    return (response.choices[0].message.content or "").strip()


def _messages(loop: ToolLoop, message: str,
              system_prompt: str | None = None) -> list[dict[str, Any]]:
    system_prompt = loop.system_prompt if system_prompt is None else system_prompt
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*system, {"role": "user", "content": message}]


FIELD_PROMPT = ("Customer message: {message}\nWhich {name} does the message give? "
                "({description}) Answer with one of the options only.")


def field_request(loop: ToolLoop, message: str, name: str, description: str,
                  options: Sequence[Any]) -> dict[str, Any]:
    """One argument, on its own: the answer must be one of `options` (as JSON text)."""
    return {"model": loop.model, "temperature": 0.0, "max_tokens": 40,
            "messages": [{"role": "user", "content": FIELD_PROMPT.format(
                message=message, name=name.replace("_", " "), description=description)}],
            "extra_body": {"structured_outputs": {"choice": [_text(v) for v in options]}}}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@dataclass
class Attempt:
    """What one setup produced for one message: the calls, and every request it sent."""

    calls: list[ToolCall] = field(default_factory=list)
    content: str = ""
    finish_reason: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Setup:
    """One way of asking for a tool call, for `evaluate` and the notebooks: the tools narrowed
    to the message, optionally with descriptions written for the model, a system prompt of
    its own, a router that picks the tool first (then a named `tool_choice`), and
    `per_field`: after the router, each argument the message offers several values for is
    chosen in a request of its own (structured output `choice`), and the call is assembled
    from the answers, with no tool-call request at all. `few_shot`: FEW_SHOT's worked
    examples in the system prompt of the call request (unless `system_prompt` is given) and in
    the router's prompt."""

    name: str
    descriptions: Mapping[str, str] | None = None
    router: bool = False
    per_field: bool = False
    system_prompt: str | None = None
    few_shot: bool = False

    def run(self, loop: ToolLoop, message: str) -> Attempt:
        """The first turn's calls for `message`, and the requests that made them."""
        attempt = Attempt()
        tool = None
        if self.router or self.per_field:
            tool = route(loop, message, descriptions=self.descriptions, sent=attempt.requests,
                         few_shot=self.few_shot)
        if self.per_field and tool in loop.registry:
            spec = loop.registry.get(tool)
            arguments = {}
            for name, options in (argument_choices(spec, message) or {}).items():
                if len(options) > 1:
                    schema = spec.parameters["properties"][name]
                    kwargs = field_request(loop, message, name, schema.get("description", ""),
                                           options)
                    answer = _send(loop, kwargs, attempt.requests).choices[0].message.content
                    options = [v for v in options if _text(v) == (answer or "").strip()] \
                        or options
                arguments[name] = options[0]
            attempt.calls = [ToolCall(tool, json.dumps(arguments), "per-field")]
            attempt.finish_reason = "assembled"
            return attempt
        kwargs = call_request(loop, message, tool=tool, descriptions=self.descriptions)
        system_prompt = self.system_prompt
        if system_prompt is None and self.few_shot:
            system_prompt = FEW_SHOT_PROMPT.format(examples=few_shot_lines())
        if system_prompt is not None:
            kwargs["messages"] = _messages(loop, message, system_prompt)
        response = _send(loop, kwargs, attempt.requests)
        reply = response.choices[0]
        attempt.calls = [ToolCall.from_openai(c) for c in (reply.message.tool_calls or [])]
        attempt.content = reply.message.content or ""
        attempt.finish_reason = reply.finish_reason
        return attempt


def _send(loop: ToolLoop, kwargs: dict[str, Any], sent: list[dict[str, Any]]) -> Any:
    sent.append(kwargs)
    return loop.connection.request(lambda c: c.chat.completions.create(**kwargs),
                                   what="a tool-call request")


def message_values(spec: ToolSpec, message: str) -> dict[str, list[Any]]:
    """For an agent's `narrow=` (module 4): the values `message` offers, only for the
    parameters it fills (an optional parameter it leaves out is then not offered at all)."""
    return {name: values for name, values in (argument_choices(spec, message) or {}).items()
            if values_in(message, spec.parameters["properties"][name])}
