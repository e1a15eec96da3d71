"""Module 2's examples: ACME's support ticket, ticket IDs, phone numbers, a report, sentiment.

The report grammar comes twice. `REPORT_GRAMMAR_UNBOUNDED` allows any number of sections and
bullets of any length: nothing in it ever forces `## REPORT END ##`, so a small model can run
until max_tokens cuts it off, and the cut answer is not a complete report. `REPORT_GRAMMAR`
bounds every repetition (at most 3 sections of at most 3 bullets of at most 60 characters), so
after a finite number of characters the only way on is the end marker: with max_tokens above
that bound, every answer is complete. The grammar is built from the `REPORT_*` numbers below and
`REPORT_MAX_CHARS` (the bound) is computed from the same numbers, so they cannot disagree; the
editor's report preset gives max_tokens exactly that room.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files
from typing import Literal

from pydantic import BaseModel, Field

from .constraints import Constraint, choice, grammar, json_schema, regex

TICKET_TYPES = ["billing", "technical", "general", "complaint", "feature_request"]
PRIORITIES = ["low", "medium", "high", "urgent"]
SENTIMENTS = ["positive", "negative", "neutral"]

TICKET_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "ticket_type": {"type": "string", "enum": TICKET_TYPES},
        "priority": {"type": "string", "enum": PRIORITIES},
        "summary": {"type": "string", "maxLength": 100},
        "customer_sentiment": {"type": "string", "enum": SENTIMENTS},
        "requires_escalation": {"type": "boolean"},
    },
    "required": ["ticket_type", "priority", "summary", "customer_sentiment",
                 "requires_escalation"],
    "additionalProperties": False,
}


class SupportTicket(BaseModel):
    """The same ticket as a pydantic model: `json_schema(SupportTicket)` takes it as is."""

    ticket_type: Literal["billing", "technical", "general", "complaint", "feature_request"]
    priority: Literal["low", "medium", "high", "urgent"]
    summary: str = Field(max_length=100)
    customer_sentiment: Literal["positive", "negative", "neutral"]
    requires_escalation: bool


TICKET_ID_REGEX = r"ACME-[A-Z]{4}-[0-9]{4}"
US_PHONE_REGEX = r"\(\d{3}\) \d{3}-\d{4}"

REPORT_SECTIONS = 3  # at most this many sections ...
REPORT_BULLETS = 3  # ... of at most this many bullets ...
REPORT_BULLET_CHARS = 60  # ... of at most this many characters each
REPORT_TITLE_CHARS = 31  # a capital letter, then 2 to 30 letters or spaces


def _at_most(n: int, item: str) -> str:
    """`item` once, then up to n - 1 more times: `item item? item?` for n = 3."""
    return " ".join([item] + [f"{item}?"] * (n - 1))


REPORT_GRAMMAR = (
    f'root ::= "## REPORT START ##\\n" {_at_most(REPORT_SECTIONS, "section")} '
    '"## REPORT END ##"\n'
    f'section ::= "### " title " ###\\n" {_at_most(REPORT_BULLETS, "bullet")}\n'
    f"title ::= [A-Z] [A-Za-z ]{{2,{REPORT_TITLE_CHARS - 1}}}\n"
    f'bullet ::= "- " [^\\n#]{{1,{REPORT_BULLET_CHARS}}} "\\n"')

# The longest report REPORT_GRAMMAR allows, in characters: the start marker, every section at
# its longest (title line, then every bullet line at its longest), the end marker. A token adds
# at least one character, so max_tokens=REPORT_MAX_CHARS always leaves room for the end marker.
REPORT_MAX_CHARS = (
    len("## REPORT START ##\n")
    + REPORT_SECTIONS * (len("### ") + REPORT_TITLE_CHARS + len(" ###\n")
                         + REPORT_BULLETS * (len("- ") + REPORT_BULLET_CHARS + len("\n")))
    + len("## REPORT END ##"))

REPORT_GRAMMAR_UNBOUNDED = r'''root ::= "## REPORT START ##\n" section+ "## REPORT END ##"
section ::= "### " title " ###\n" bullet+
title ::= [A-Za-z ]+
bullet ::= "- " [^\n]+ "\n"'''

REPORT_FACTS = ("150 tickets resolved, 23 escalated, 4.2 min average handling time, "
                "94% CSAT (customer satisfaction)")
REPORT_PROMPT = f"Write a short weekly support report with these facts: {REPORT_FACTS}."

TICKET_SYSTEM_PROMPT = (
    "You turn customer messages into support tickets. Reply with only a JSON object with "
    "these keys: ticket_type (one of billing, technical, general, complaint, feature_request), "
    "priority (one of low, medium, high, urgent), summary (at most 100 characters), "
    "customer_sentiment (one of positive, negative, neutral), requires_escalation (true or "
    "false)."
)


def ticket_prompt(message: str) -> str:
    return f"Customer message: {message}\nWrite the support ticket as JSON."


@dataclass(frozen=True)
class Preset:
    """An editor preset: a mode, the constraint's text, a prompt that suits it."""

    name: str
    constraint: Constraint
    prompt: str
    max_tokens: int

    @property
    def mode(self) -> str:
        return self.constraint.mode


def presets() -> dict[str, Preset]:
    """The schema editor's presets, by name (module 2's examples)."""
    items = [
        Preset("Support ticket (JSON)", json_schema(TICKET_SCHEMA, name="support_ticket"),
               ticket_prompt("I was charged twice for my order."), 160),
        Preset("Ticket ID (regex)", regex(TICKET_ID_REGEX),
               "Make up a ticket ID for a new ACME support ticket.", 16),
        Preset("US phone (regex)", regex(US_PHONE_REGEX),
               "Format this US phone number: 5551234567", 16),
        # max_tokens: the grammar's own bound, so every constrained report can finish.
        Preset("Report (grammar)", grammar(REPORT_GRAMMAR), REPORT_PROMPT, REPORT_MAX_CHARS),
        Preset("Sentiment (choice)", choice(SENTIMENTS),
               "What is the sentiment of this customer feedback: I love it", 8),
    ]
    return {p.name: p for p in items}


@dataclass(frozen=True)
class LabelledMessage:
    """A customer message with the ticket fields a person assigned to it."""

    text: str
    ticket_type: str
    priority: str


def support_messages() -> list[LabelledMessage]:
    """The experiment's customer messages with hand-assigned labels (lab_helpers/data)."""
    data = json.loads(files("lab_helpers.data").joinpath("support_messages.json").read_text())
    return [LabelledMessage(m["text"], m["ticket_type"], m["priority"]) for m in data["messages"]]
