"""The schema editor's logic, without a widget: a mode, a text, a prompt, a check, a run.

    editor = SchemaEditorModel(StructuredClient(srv))
    editor.load_preset("Ticket ID (regex)")
    editor.check()                 # (True, "regex ACME-...") or (False, what is wrong and where)
    comparison = editor.run()      # the prompt constrained and unconstrained, both checked

`widgets.SchemaEditor` is a thin view on this object; tests drive it directly. `run()` checks
the text first and raises `ConstraintError` before any request when it is malformed, so a bad
edit never turns into an unconstrained request. Its errors say what to change in the editor's
text (`ConstraintError.for_editor`), not which Python call to make. `preset` names the preset
the text still is, or None once it was edited.
"""

from __future__ import annotations

from dataclasses import dataclass

from .checks import MODES, ConstraintError, StructuredError
from .client import StructuredClient, StructuredResult
from .constraints import Constraint, from_text
from .presets import Preset, presets


@dataclass(frozen=True)
class Comparison:
    """The same prompt answered with and without the constraint."""

    constraint: Constraint
    constrained: StructuredResult
    unconstrained: StructuredResult


class SchemaEditorModel:
    """State of one editor: what is typed, and what the last check and run found."""

    def __init__(self, client: StructuredClient | None = None, *,
                 preset: str | None = "Support ticket (JSON)") -> None:
        self.client = client
        self.presets: dict[str, Preset] = presets()
        self.mode: str = "json"
        self.text: str = ""
        self.prompt: str = ""
        self.max_tokens: int = 128
        self.last: Comparison | None = None
        self._loaded: str | None = None
        if preset is not None:
            self.load_preset(preset)

    def load_preset(self, name: str) -> Preset:
        if name not in self.presets:
            raise StructuredError(f"No preset named {name!r}.",
                                  fix="use one of: " + ", ".join(self.presets))
        preset = self.presets[name]
        self._loaded = name
        self.mode = preset.mode
        self.text = preset.constraint.as_text()
        self.prompt = preset.prompt
        self.max_tokens = preset.max_tokens
        return preset

    @property
    def preset(self) -> str | None:
        """The preset last loaded, while mode and text are still its own; else None."""
        if self._loaded is None:
            return None
        loaded = self.presets[self._loaded]
        if (self.mode, self.text) != (loaded.mode, loaded.constraint.as_text()):
            return None
        return self._loaded

    def constraint(self) -> Constraint:
        """The editor's text as a checked constraint (ConstraintError if it is malformed)."""
        if self.mode not in MODES:
            raise ConstraintError(f"Unknown mode {self.mode!r}.", mode=self.mode, where="mode",
                                  fix="pick one of " + ", ".join(MODES))
        try:
            return from_text(self.mode, self.text)
        except ConstraintError as exc:
            raise exc.for_editor() from None

    def check(self) -> tuple[bool, str]:
        """(ok, message) for live validation: what the constraint is, or what is wrong."""
        try:
            return True, self.constraint().describe()
        except ConstraintError as exc:
            return False, exc.message()

    def run(self) -> Comparison:
        """Check the text, then answer the prompt constrained and unconstrained."""
        self.last = None
        constraint = self.constraint()
        if self.client is None:
            raise StructuredError("The editor has no server to send to.",
                                  fix="start the chat server (vllm-lab up), then run the cell "
                                      "that shows this editor again")
        constrained, free = self.client.compare(self.prompt, constraint,
                                                max_tokens=self.max_tokens)
        self.last = Comparison(constraint, constrained, free)
        return self.last
