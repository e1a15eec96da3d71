"""Structured outputs: constrain what vLLM may generate, and check what comes back.

    from lab_helpers import structured
    from lab_helpers.structured import StructuredClient

    gen = StructuredClient(srv, max_tokens=16)
    result = gen.run("Sentiment of: I love it",
                     structured.choice(["positive", "negative", "neutral"]))
    result.text, result.verdict.valid            # 'positive', True

Four modes, each a `Constraint` built by one function: `json_schema(dict | pydantic model)`,
`regex(pattern)`, `choice(options)`, `grammar(ebnf)`. A constraint checks its spec when it is
made (`ConstraintError`: what is wrong and where) and builds only the request fields vLLM 0.32
reads — `response_format` for JSON, `structured_outputs` for the others — never the old
`guided_*` fields that today's vLLM silently ignores. Every answer is validated on the client
(`Verdict`), because an ignored constraint looks exactly like an obeyed one from the HTTP status.

Module map: `checks` (each spec checked before sending, the errors), `constraints` (the
`Constraint` and its builders), `verdicts` (output checks), `client`
(requests, server errors), `presets` (module 2's examples), `experiment` (the ticket
experiment), `editor` (the schema editor's logic; the widget is `widgets.SchemaEditor`).

May import: `connect`, `server`, `errors`.
"""

from __future__ import annotations

from .checks import (
    MODES,
    ConstraintError,
    InvalidChoice,
    InvalidGrammar,
    InvalidRegex,
    InvalidSchema,
    StructuredError,
)
from .client import (
    InvalidAnswer,
    ServerRejected,
    ServerUnreachable,
    StructuredClient,
    StructuredResult,
)
from .constraints import Constraint, choice, from_text, grammar, json_schema, regex
from .verdicts import Verdict, extract_json, grammar_accepts

__all__ = [
    "MODES", "Constraint", "ConstraintError", "InvalidAnswer", "InvalidChoice", "InvalidGrammar",
    "InvalidRegex", "InvalidSchema", "ServerRejected", "ServerUnreachable", "StructuredClient",
    "StructuredError", "StructuredResult", "Verdict", "choice", "extract_json", "from_text",
    "grammar", "grammar_accepts", "json_schema", "regex",
]
