"""Waits of more than a few seconds show progress: the tool evaluation and module 2's experiment."""

from __future__ import annotations

from lab_helpers.structured import experiment
from lab_helpers.tools import evaluate as tool_evaluation


def test_the_tool_evaluation_counts_its_requests(monkeypatch, capsys):
    monkeypatch.setattr(tool_evaluation, "score",
                        lambda loop, case, choice: {"mode": choice, "request": case.request})
    cases = tool_evaluation.support_requests()[:3]
    frame = tool_evaluation.evaluate(None, cases, ["auto", "required"], workers=2)
    assert len(frame) == 6
    shown = capsys.readouterr().err
    assert "requests" in shown and "6/6" in shown
    tool_evaluation.evaluate(None, cases, ["auto"], workers=2, progress=False)
    assert "3/3" not in capsys.readouterr().err


def test_the_ticket_experiment_counts_its_answers(monkeypatch, capsys):
    class Verdict:
        parsed, valid, reason, value = True, True, "", {"ticket_type": "x", "priority": "low"}

    class Result:
        text, verdict, latency_s, completion_tokens, finish_reason = "{}", Verdict(), 0.1, 3, "stop"

    class Client:
        def run(self, *args, **kwargs):
            return Result()

    messages = experiment.support_messages()[:4]
    frame = experiment.run_ticket_experiment(Client(), messages)
    assert len(frame) == 8
    shown = capsys.readouterr().err
    assert "answers" in shown and "8/8" in shown
