"""Tools narrowed to a message: the values offered come from the message, the narrowed schemas
only restrict the tools' own, and tools the message cannot fill are not offered."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from lab_helpers.support import SupportDesk
from lab_helpers.tools import ToolCall, ToolExecutor, ToolLoop, acme_registry
from lab_helpers.tools.evaluate import support_requests
from lab_helpers.tools.extract import (
    FEW_SHOT,
    FOR_THE_MODEL,
    Setup,
    argument_choices,
    clauses,
    few_shot_lines,
    field_request,
    for_message,
    phrases,
    route_request,
    values_in,
)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    return acme_registry(SupportDesk(tmp_path_factory.mktemp("desk") / "acme.sqlite"))


def test_a_pattern_parameter_takes_only_matching_spans_of_the_message(registry):
    order_id = registry.get("get_order_status").parameters["properties"]["order_id"]
    assert values_in("Has order ORD-99001 shipped yet? Not ORD-1.", order_id) == ["ORD-99001"]
    assert values_in("Where is my parcel?", order_id) == []
    email = registry.get("create_ticket").parameters["properties"]["customer_email"]
    assert values_in("Open a ticket for john.smith@email.com: it broke.", email) == [
        "john.smith@email.com"]


def test_enums_and_numbers_take_what_the_message_names(registry):
    props = registry.get("search_products").parameters["properties"]
    assert values_in("Any rain jackets in the clothing section?", props["category"]) == [
        "clothing"]
    assert values_in("Show me wireless headphones under $100.", props["max_price"]) == [100]
    assert values_in("Call 555-123-4567 about ORD-78432", props["max_price"]) == []


def test_free_text_is_a_phrase_or_a_clause_of_the_message():
    message = "Open a ticket for john.smith@email.com: my headphones stopped charging."
    assert "headphones stopped charging" in phrases(message)
    assert "my headphones stopped charging" in clauses(message)
    assert all(p in message for p in phrases(message) + clauses(message))


def test_a_tool_whose_required_argument_is_missing_is_not_offered(registry):
    names = for_message(registry, "Where is my order ORD-78432?").names
    assert "get_order_status" in names
    assert not {"get_customer_info", "create_ticket", "schedule_callback"} & set(names)
    assert for_message(registry, "Do you sell laptops?").names == ["search_products"]


def test_optional_parameters_the_message_leaves_out_get_their_default(registry):
    choices = argument_choices(registry.get("create_ticket"),
                               "Open a ticket for john.smith@email.com: it broke.")
    assert choices["priority"] == ["normal"]
    urgent = argument_choices(registry.get("create_ticket"),
                              "File an urgent ticket for john.smith@email.com, it broke.")
    assert urgent["priority"] == ["urgent"]
    callback = argument_choices(registry.get("schedule_callback"), "Call me on 555-123-4567.")
    assert callback["preferred_time"] == [None]


@pytest.mark.parametrize("case", support_requests(), ids=lambda c: c.request[:30])
def test_narrowed_schemas_only_restrict_the_tools_own(registry, case):
    narrowed = for_message(registry, case.request, descriptions=FOR_THE_MODEL)
    assert case.tool in narrowed, "the expected tool must stay on offer"
    for name in narrowed.names:
        definition = narrowed.get(name).definition()["function"]
        params = definition["parameters"]
        assert params["required"] == list(registry.get(name).parameters["properties"])
        assert params["additionalProperties"] is False
        for prop, schema in params["properties"].items():
            offered = schema.get("enum") or [v for o in schema.get("anyOf", [])
                                            for v in o.get("enum", [None])]
            if schema.get("type") == "null":
                offered = [None]
            assert offered, f"{name}.{prop} offers nothing"
            for value in offered:  # every offered value passes the tool's own schema
                jsonschema.validate(value, registry.get(name).parameters["properties"][prop])
        first = {p: (s.get("enum") or [None])[0] if "anyOf" not in s
                 else s["anyOf"][0]["enum"][0] for p, s in params["properties"].items()}
        registry.validate(ToolCall(name, json.dumps(first)))


def test_a_made_up_value_fails_the_narrowed_schema(registry):
    narrowed = for_message(registry, "Where is my order ORD-78432?")
    schema = narrowed.get("get_order_status").parameters
    jsonschema.validate({"order_id": "ORD-78432"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"order_id": "ORD-12345"}, schema)


def test_router_and_field_requests_constrain_the_answer_to_a_choice(registry):
    # a real loop; building the requests sends nothing
    loop = ToolLoop(executor=ToolExecutor(registry), model="m",
                    client=openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="unused"))
    routed = route_request(loop, "Where is ORD-78432?", ["get_order_status", "search_products"],
                           descriptions=FOR_THE_MODEL)
    assert routed["extra_body"] == {"structured_outputs": {"choice": [
        "get_order_status", "search_products"]}}
    assert FOR_THE_MODEL["get_order_status"] in routed["messages"][0]["content"]
    field = field_request(loop, "Under $100 or $50", "max_price", "Highest price", [100, 50.5])
    assert field["extra_body"]["structured_outputs"]["choice"] == ["100", "50.5"]


def test_few_shot_examples_are_real_calls_and_none_is_a_scored_request(registry):
    """The worked examples (extract.FEW_SHOT) are calls the registry accepts, their values are
    in their messages, and no example is one of the labelled requests the benchmark scores
    (else the setup would be shown its own answers)."""
    scored = {r.request for r in support_requests()}
    for message, tool, arguments in FEW_SHOT:
        assert message not in scored
        registry.validate(ToolCall(tool, json.dumps(arguments), "example"))
        spec = registry.get(tool).parameters["properties"]
        free = [k for k, v in arguments.items() if isinstance(v, str)
                and "pattern" not in spec[k] and "enum" not in spec[k]]
        assert all(arguments[k] in message for k in free), message  # quoted, not invented
    assert {tool for _, tool, _ in FEW_SHOT} == set(registry.names)  # one per tool


def test_few_shot_puts_the_examples_in_the_router_and_the_call_request(registry):
    loop = ToolLoop(executor=ToolExecutor(registry), model="m",
                    client=openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="unused"))
    names = ["get_order_status", "search_products"]
    plain = route_request(loop, "Where is ORD-78432?", names)["messages"][0]["content"]
    shown = route_request(loop, "Where is ORD-78432?", names,
                          few_shot=True)["messages"][0]["content"]
    assert FEW_SHOT[0][0] not in plain and few_shot_lines(with_arguments=False) in shown
    sent: list[dict] = []

    class Reply:  # what the call request would answer: nothing needed here
        choices = [type("C", (), {"message": type("M", (), {"tool_calls": [], "content": ""}),
                                  "finish_reason": "stop"})]

    loop.connection.request = lambda send, what: sent.append(what) or Reply()  # type: ignore
    attempt = Setup("few_shot", FOR_THE_MODEL, few_shot=True).run(loop, "Where is ORD-78432?")
    system = attempt.requests[-1]["messages"][0]
    assert system["role"] == "system" and few_shot_lines() in system["content"]
    assert json.dumps(FEW_SHOT[0][2]) in system["content"]
