"""Waits of more than a few seconds show progress, against the real chat server: the tool
evaluation (module 3) and module 2's experiment count their requests as they finish."""

from __future__ import annotations

import pytest

from lab_helpers.structured import StructuredClient
from lab_helpers.structured.experiment import run_ticket_experiment, support_messages
from lab_helpers.support import SupportDesk
from lab_helpers.tools import ToolExecutor, ToolLoop, acme_registry, approve_all
from lab_helpers.tools.evaluate import evaluate, support_requests

pytestmark = pytest.mark.integration


def test_the_tool_evaluation_counts_its_requests(chat_srv, tmp_path, capsys):
    loop = ToolLoop(chat_srv, ToolExecutor(acme_registry(SupportDesk(tmp_path / "acme.sqlite")),
                                           decide=approve_all), max_tokens=60)
    cases = support_requests()[:3]
    frame = evaluate(loop, cases, ["required", "none"], workers=3)
    assert len(frame) == 6
    shown = capsys.readouterr().err
    assert "requests" in shown and "6/6" in shown
    evaluate(loop, cases, ["none"], workers=3, progress=False)
    assert "3/3" not in capsys.readouterr().err


def test_the_ticket_experiment_counts_its_answers(chat_srv, capsys):
    frame = run_ticket_experiment(StructuredClient(chat_srv, max_tokens=60),
                                  support_messages()[:2])
    assert len(frame) == 4  # two messages, asked and constrained
    shown = capsys.readouterr().err
    assert "answers" in shown and "4/4" in shown
