"""The parameter tables of both directions (chat clients: CHAT_PARAMS; Responses clients: RESPONSES_PARAMS):
every parameter of the client's API has a row, and the rows drive the mapping, the report of what was dropped
and the naming of the client's parameters in upstream errors."""

from __future__ import annotations

import json

import pytest
from spec_check import SCHEMA_FILE

from proxy.errors import ProxyError
from proxy.translate import (CHAT_PARAMS, RESPONSES_PARAMS, ChatOptions, Param, ParamTable, chat_to_responses,
                             name_chat_params, name_responses_params, responses_request_to_chat)

pytestmark = pytest.mark.core  # the pure translation core: `pytest -m core` runs these alone


def _properties(schemas: dict, name: str) -> set[str]:
    """A schema's property names, through its ``$ref`` and ``allOf`` parts."""
    found: set[str] = set()
    stack = [schemas[name]]
    while stack:
        schema = stack.pop()
        if "$ref" in schema:
            stack.append(schemas[schema["$ref"].rsplit("/", 1)[-1]])
        found.update(schema.get("properties", {}))
        stack.extend(schema.get("allOf", ()))
    return found


SCHEMAS = json.loads(SCHEMA_FILE.read_text("utf-8"))["components"]["schemas"]
CHAT_REQUEST = _properties(SCHEMAS, "CreateChatCompletionRequest")
RESPONSES_REQUEST = _properties(SCHEMAS, "CreateResponse")


def test_every_chat_parameter_of_the_spec_has_a_row():
    assert len(CHAT_REQUEST) > 30  # the schema was read
    assert sorted(name for name in CHAT_REQUEST if name not in CHAT_PARAMS) == []


def test_every_responses_parameter_of_the_spec_has_a_row():
    assert len(RESPONSES_REQUEST) > 25  # the schema was read
    assert sorted(name for name in RESPONSES_REQUEST if name not in RESPONSES_PARAMS) == []


def test_a_responses_row_without_a_handler_drops_its_parameter():
    """A dropped row may still check and echo its value (the Response echoes ``store``); others all map."""
    for row in RESPONSES_PARAMS.rows:
        assert row.map is not None or row.fate == "dropped" or row.name == "model", row


def test_a_row_either_maps_its_parameter_or_drops_it():
    for row in CHAT_PARAMS.rows:
        assert (row.map is None) == (row.fate == "dropped") or row.name == "model", row


def test_only_dropped_and_unknown_parameters_are_reported():
    dropped = {row.name for row in CHAT_PARAMS.rows if row.fate == "dropped"}
    chat = {"model": "o3-pro", "messages": [{"role": "user", "content": "hi"}], "future_knob": 1,
            **{name: 0.5 for name in dropped}}
    assert set(chat_to_responses(chat).dropped) == dropped | {"future_knob"}


# Valid values of the Responses parameters whose rows drop them (some are checked, and echoed in the Response).
RESPONSES_DROPPED = {"store": True, "truncation": "auto", "max_tool_calls": 3,
                     "top_logprobs": 2, "prompt_cache_retention": "24h", "stream_options": {"include_obfuscation": False},
                     "context_management": [{"type": "compaction"}],
                     "prompt_cache_options": {"ttl": "30m"}, "moderation": {"model": "omni-moderation-latest"}}


def test_only_dropped_and_unknown_responses_parameters_are_reported():
    dropped = {row.name for row in RESPONSES_PARAMS.rows if row.fate == "dropped"}
    assert dropped == set(RESPONSES_DROPPED)
    result = responses_request_to_chat({"model": "m", "input": "hi", "future_knob": 1, "temperature": None,
                                        **RESPONSES_DROPPED})
    assert set(result.dropped) == dropped | {"future_knob"}
    assert set(result.body) == {"model", "messages"}


@pytest.mark.parametrize("upstream, chat_name, sent", [
    ("max_output_tokens", "max_completion_tokens", {"max_completion_tokens": 100, "max_tokens": 50}),
    ("max_output_tokens", "max_tokens", {"max_tokens": 50}),
    ("reasoning.effort", "reasoning_effort", {"reasoning_effort": "high"}),
    ("text.verbosity", "verbosity", {"verbosity": "low"}),
])
def test_the_rows_paths_name_the_clients_parameter(upstream, chat_name, sent):
    translation = chat_to_responses({"model": "o3-pro", "messages": [{"role": "user", "content": "hi"}], **sent})
    error = ProxyError(400, f"Invalid value for '{upstream}'.", param=upstream)
    error = name_chat_params(error, translation)
    assert (error.param, error.message) == (chat_name, f"Invalid value for '{chat_name}'.")


def test_a_table_runs_its_rows_in_order_on_the_values_given_and_names_from_the_first_row_sent():
    calls = []
    handler = lambda draft, name, value: calls.append((draft, name, value))  # noqa: E731
    table = ParamTable(Param("b", "mapped", handler, ("x",)), Param("a", "mapped", handler, ("x",)),
                       Param("c", "mapped", handler), Param("d", "dropped"))
    table.map("draft", {"a": 1, "b": 2, "c": None, "d": 4, "e": 5})
    assert calls == [("draft", "b", 2), ("draft", "a", 1)]  # table order; null is not given; no handler for d
    assert table.dropped({"a": 1, "d": 2, "e": 3, "f": None}) == ["d", "e"]
    assert table.client_path(["x", "y"], {"a": 1}, None) == (["a", "y"], True)
    assert table.client_path(["x"], {"a": 1, "b": 1}, None) == (["b"], True)
    assert table.client_path(["x"], {"c": 1}, None) is None


RESPONSES_TOOLS = [
    {"type": "function", "name": "a", "parameters": {"type": "object"}},
    {"type": "web_search"},  # left out: the chat request's tools[1] is the client's tools[2]
    {"type": "function", "name": "b", "parameters": {"type": "object"}},
    {"type": "namespace", "name": "ns", "description": "n", "tools": [
        {"type": "function", "name": "c"}, {"type": "custom", "name": "d"}]},
]
RESPONSES_INPUT = [
    {"role": "user", "content": [{"type": "input_text", "text": "hi"},
                                 {"type": "input_image", "image_url": "https://example.com/a.png"}]},
    {"type": "function_call", "call_id": "c1", "name": "a", "arguments": "{}"},
    {"type": "function_call", "call_id": "c2", "name": "b", "arguments": "{}"},
    {"type": "function_call_output", "call_id": "c1", "output": "one"},
    {"type": "function_call_output", "call_id": "c2", "output": "two"},
]


@pytest.mark.parametrize("upstream, client, sent", [
    ("max_completion_tokens", "max_output_tokens", {"max_output_tokens": 100}),
    ("reasoning_effort", "reasoning.effort", {"reasoning": {"effort": "high"}}),
    ("verbosity", "text.verbosity", {"text": {"verbosity": "low"}}),
    ("response_format.json_schema.schema", "text.format.schema",
     {"text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}}}),
    ("response_format.type", "text.format.type", {"text": {"format": {"type": "json_object"}}}),
    ("messages[0]", "instructions", {"instructions": "Be brief."}),
    ("messages[1].content", "input[0].content", {"instructions": "Be brief."}),
    ("messages[1].content[0].text", "input[0].content[0].text", {"instructions": "Be brief."}),
    ("messages[1].tool_calls[1].function.arguments", "input[2].arguments", {}),
    ("messages[1].tool_calls[0].id", "input[1].call_id", {}),
    ("messages[3].content", "input[4].output", {}),
    ("messages[2].tool_call_id", "input[3].call_id", {}),
    ("tools[1].function.parameters", "tools[2].parameters", {}),
    ("tools[0].function.parameters.properties", "tools[0].parameters.properties", {}),
    ("tools[2].function.name", "tools[3].tools[0].name", {}),
    ("tool_choice.function.name", "tool_choice.name", {"tool_choice": {"type": "function", "name": "b"}}),
])
def test_the_responses_rows_paths_name_the_clients_parameter(upstream, client, sent):
    request = responses_request_to_chat({"model": "m", "input": RESPONSES_INPUT, "tools": RESPONSES_TOOLS, **sent})
    error = ProxyError(400, f"Invalid value for '{upstream}'.", param=upstream)
    error = name_responses_params(error, request)
    assert (error.param, error.message) == (client, f"Invalid value for '{client}'.")


@pytest.mark.parametrize("upstream, client", [
    ("messages[1].content[1].image_url.url", "input[0].content[1]"),  # the part, not its field's name
    ("tools[3].function.parameters", "tools[3].tools[1]"),  # a custom tool's function is the proxy's making
])
def test_a_chat_path_below_what_has_a_responses_name_names_the_item(upstream, client):
    request = responses_request_to_chat({"model": "m", "input": RESPONSES_INPUT, "tools": RESPONSES_TOOLS,
                                         "instructions": "Be brief."})
    error = ProxyError(400, f"Invalid '{upstream}'.", param=upstream)
    error = name_responses_params(error, request)
    assert (error.param, error.message) == (client, f"Invalid '{upstream}'.")  # only whole paths are renamed


def test_the_chat_parameter_a_responses_request_sent_as_such_keeps_its_name():
    request = responses_request_to_chat({"model": "m", "input": "hi", "temperature": 0.5},
                                        ChatOptions(max_tokens_param="max_tokens"))
    for param in ("temperature", "model", "stream_options"):
        error = ProxyError(400, f"Invalid '{param}'.", param=param)
        assert name_responses_params(error, request).param == param
    assert request.body["messages"] == [{"role": "user", "content": "hi"}]
