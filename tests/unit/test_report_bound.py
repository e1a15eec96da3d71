"""Module 2's report grammar and its bound: the figure the notebook prints, the grammar and the
schema editor's max_tokens come from the same numbers (issue 19: the text said ~722 characters
while the editor's preset sent 256)."""

from __future__ import annotations

from lab_helpers import structured
from lab_helpers.structured.presets import (
    REPORT_BULLET_CHARS,
    REPORT_BULLETS,
    REPORT_GRAMMAR,
    REPORT_MAX_CHARS,
    REPORT_SECTIONS,
    REPORT_TITLE_CHARS,
    presets,
)


def _report(sections: int = REPORT_SECTIONS, bullets: int = REPORT_BULLETS,
            title: int = REPORT_TITLE_CHARS, bullet: int = REPORT_BULLET_CHARS) -> str:
    section = ("### " + "T" + "t" * (title - 1) + " ###\n"
               + ("- " + "x" * bullet + "\n") * bullets)
    return "## REPORT START ##\n" + section * sections + "## REPORT END ##"


def test_the_longest_report_the_grammar_accepts_has_the_bound_s_length():
    longest = _report()
    assert structured.grammar(REPORT_GRAMMAR).check(longest).valid
    assert len(longest) == REPORT_MAX_CHARS == 722


def test_one_character_more_anywhere_is_refused():
    report = structured.grammar(REPORT_GRAMMAR)
    for longer in (_report(sections=REPORT_SECTIONS + 1), _report(bullets=REPORT_BULLETS + 1),
                   _report(title=REPORT_TITLE_CHARS + 1), _report(bullet=REPORT_BULLET_CHARS + 1)):
        verdict = report.check(longer)
        assert not verdict.valid, len(longer)


def test_the_editor_s_report_preset_leaves_room_for_the_whole_report():
    preset = presets()["Report (grammar)"]
    assert preset.constraint.spec == REPORT_GRAMMAR
    assert preset.max_tokens >= REPORT_MAX_CHARS
