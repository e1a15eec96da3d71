"""Tools narrowed to the message, against the real chat server (SmolLM2-135M).

Checked by structure: the call names a tool that was offered, its arguments pass the tool's
own schema, and every id, e-mail or phone in them is one the message contains (the narrowed
schema allows nothing else, so a server that ignored it would fail here). Which tool the
model picks among those left is not asserted.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from lab_helpers.support import SupportDesk
from lab_helpers.tools import ToolExecutor, ToolLoop, acme_registry, approve_all
from lab_helpers.tools.extract import FOR_THE_MODEL, Setup, for_message

pytestmark = pytest.mark.integration

TICKET = "Open a ticket for john.smith@email.com: my headphones stopped charging."
ORDER = "Has order ORD-99001 shipped yet?"
QUOTED = ("order_id", "customer_email", "customer_phone")


@pytest.fixture(scope="module")
def attempts(chat_srv, tmp_path_factory):
    desk = SupportDesk(tmp_path_factory.mktemp("desk") / "acme.sqlite")
    loop = ToolLoop(chat_srv, ToolExecutor(acme_registry(desk), decide=approve_all),
                    max_tokens=120)
    jobs = [(Setup("narrowed", FOR_THE_MODEL), ORDER), (Setup("per_field", FOR_THE_MODEL,
                                                              per_field=True), TICKET)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = list(pool.map(lambda job: (job[1], job[0].run(loop, job[1])), jobs))
    return loop, dict(done)


def check(loop: ToolLoop, message: str, attempt) -> dict:
    assert attempt.calls, f"no call (finish_reason {attempt.finish_reason!r})"
    call = attempt.calls[0]
    assert call.name in for_message(loop.registry, message), call.name
    loop.registry.validate(call)  # the tool's own schema, not the narrowed one
    arguments = json.loads(call.arguments)
    for key in QUOTED:
        if arguments.get(key) is not None:
            assert arguments[key] in message, f"{key}={arguments[key]!r} is not in the message"
    return arguments


def test_one_required_round_over_the_narrowed_tools(attempts):
    loop, done = attempts
    attempt = done[ORDER]
    check(loop, ORDER, attempt)
    sent = attempt.requests[-1]
    assert sent["tool_choice"] == "required"
    assert {t["function"]["name"] for t in sent["tools"]} == set(
        for_message(loop.registry, ORDER).names)


def test_per_field_assembles_a_call_from_choices_the_message_offers(attempts):
    loop, done = attempts
    attempt = done[TICKET]
    arguments = check(loop, TICKET, attempt)
    assert attempt.requests[0]["extra_body"]["structured_outputs"]["choice"]  # the router
    for text in (arguments.get(k) for k in ("subject", "description", "query")):
        assert text is None or text in TICKET, f"{text!r} does not quote the message"
