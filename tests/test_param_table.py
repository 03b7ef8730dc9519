"""The chat parameter table: every parameter of the chat API has a row, and the rows drive the mapping, the
report of what was dropped and the naming of parameters in upstream errors."""

from __future__ import annotations

import json

import pytest
from spec_check import SCHEMA_FILE

from proxy.errors import ProxyError
from proxy.translate import CHAT_PARAMS, Param, ParamTable, chat_to_responses, name_chat_params

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


CHAT_REQUEST = _properties(json.loads(SCHEMA_FILE.read_text("utf-8"))["components"]["schemas"],
                           "CreateChatCompletionRequest")


def test_every_chat_parameter_of_the_spec_has_a_row():
    assert len(CHAT_REQUEST) > 30  # the schema was read
    assert sorted(name for name in CHAT_REQUEST if name not in CHAT_PARAMS) == []


def test_a_row_either_maps_its_parameter_or_drops_it():
    for row in CHAT_PARAMS.rows:
        assert (row.map is None) == (row.fate == "dropped") or row.name == "model", row


def test_only_dropped_and_unknown_parameters_are_reported():
    dropped = {row.name for row in CHAT_PARAMS.rows if row.fate == "dropped"}
    chat = {"model": "o3-pro", "messages": [{"role": "user", "content": "hi"}], "future_knob": 1,
            **{name: 0.5 for name in dropped}}
    assert set(chat_to_responses(chat).dropped) == dropped | {"future_knob"}


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


def test_a_table_runs_each_handler_once_in_order_and_names_from_the_first_row_sent():
    calls = []
    first, second = (lambda draft: calls.append("first")), (lambda draft: calls.append("second"))
    table = ParamTable(Param("a", "mapped", second, ("x",)), Param("b", "mapped", first, ("x",)),
                       Param("c", "mapped", second), Param("d", "dropped"))
    for handler in table.handlers:
        handler(None)
    assert calls == ["second", "first"]
    assert table.dropped({"a": 1, "d": 2, "e": 3}) == ["d", "e"]
    assert table.client_path(["x", "y"], {"b": 1}, None) == (["b", "y"], True)
    assert table.client_path(["x"], {"a": 1, "b": 1}, None) == (["a"], True)
    assert table.client_path(["x"], {"c": 1}, None) is None
