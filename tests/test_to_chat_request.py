"""Responses request -> chat request (proxy.translate.to_chat.request): each rule, checked against the spec."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import realdata
from proxy.errors import InvalidRequest, ProxyError
from proxy.translate import RESPONSES_PARAMS, ChatOptions, completion_to_response, responses_request_to_chat
from spec_check import check_chat_request, check_create_response, check_error_body, check_response, create_response_keys
from strategies import mutated

MODEL = "deepseek-chat"


def mapped(request, options=None, history=None, valid_request=True):
    """Map a request; the result must be a valid chat request, the input (when asked) a valid Responses one."""
    body = {"model": MODEL, **request}
    if valid_request:
        check_create_response({key: value for key, value in body.items() if key in create_response_keys()})
    result = responses_request_to_chat(copy.deepcopy(body), options, history)
    check_chat_request(result.body)
    json.dumps(result.body)
    return result


def refused(request, options=None, status=400):
    with pytest.raises(ProxyError) as caught:
        responses_request_to_chat({"model": MODEL, **request}, options)
    error = caught.value
    assert error.status == status
    check_error_body(error.body())
    return error


# --- instructions and input ---------------------------------------------------


def test_string_input_and_instructions_become_a_system_and_a_user_message():
    result = mapped({"instructions": "Be brief.", "input": "Hello"})
    assert result.body == {"model": MODEL, "messages": [{"role": "system", "content": "Be brief."},
                                                         {"role": "user", "content": "Hello"}]}
    assert result.dropped == [] and result.state.echo["instructions"] == "Be brief."


def test_instructions_as_items_lead_the_conversation():
    result = mapped({"instructions": [{"role": "developer", "content": "Rule one."},
                                      {"role": "system", "content": [{"type": "input_text", "text": "Rule two."}]}],
                     "input": "Hello"}, valid_request=False)
    assert result.body["messages"] == [{"role": "system", "content": "Rule one."},
                                       {"role": "system", "content": "Rule two."}, {"role": "user", "content": "Hello"}]


def test_message_items_of_every_role():
    result = mapped({"input": [
        {"role": "developer", "content": "Use tools."},
        {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "A"},
                                                          {"type": "input_text", "text": "B"}]},
        {"role": "user", "content": "Hi"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello", "annotations": []}]},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't."}]},
    ]})
    assert result.body["messages"] == [
        {"role": "system", "content": "Use tools."},  # chat-only upstreams know no developer role
        {"role": "system", "content": "AB"},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "assistant", "content": None, "refusal": "I can't."},
    ]


def test_user_parts_text_image_and_file():
    result = mapped({"input": [{"role": "user", "content": [
        {"type": "input_text", "text": "Look"},
        {"type": "input_image", "image_url": "https://img.example/a.png", "detail": "low"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"},
        {"type": "input_file", "file_id": "file-abc"},
        {"type": "input_file", "file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"},
    ]}]})
    assert result.body["messages"][0]["content"] == [
        {"type": "text", "text": "Look"},
        {"type": "image_url", "image_url": {"url": "https://img.example/a.png", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "file", "file": {"file_id": "file-abc"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}},
    ]


def test_one_text_part_is_sent_as_a_string_and_several_user_parts_stay_parts():
    one = mapped({"input": [{"role": "user", "content": [{"type": "input_text", "text": "x"}]}]})
    two = mapped({"input": [{"role": "user", "content": [{"type": "input_text", "text": "x"},
                                                         {"type": "input_text", "text": "y"}]}]})
    assert one.body["messages"][0]["content"] == "x"
    assert two.body["messages"][0]["content"] == [{"type": "text", "text": "x"}, {"type": "text", "text": "y"}]


def test_function_calls_join_the_assistant_text_before_them_and_outputs_become_tool_messages():
    result = mapped({"input": [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking.",
                                                              "annotations": []}]},
        {"type": "function_call", "call_id": "call_a", "name": "weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call", "call_id": "call_b", "name": "weather", "arguments": '{"city":"Rome"}'},
        {"type": "function_call_output", "call_id": "call_a", "output": "sunny"},
        {"type": "function_call_output", "call_id": "call_b", "output": [{"type": "input_text", "text": "rain"}]},
        {"type": "function_call", "call_id": "call_c", "name": "weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_c", "output": "?"},
    ]})
    assert result.body["messages"][1:] == [
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}},
            {"id": "call_b", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Rome"}'}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_b", "content": "rain"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_c", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_c", "content": "?"},
    ]


def test_text_after_calls_starts_a_new_assistant_message():
    result = mapped({"input": [
        {"role": "user", "content": "x"},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"role": "assistant", "content": "after"},
    ]})
    assert [message.get("content") for message in result.body["messages"]] == ["x", None, "after"]


def test_images_in_a_tool_output_are_reported_dropped():
    result = mapped({"input": [
        {"type": "function_call", "call_id": "c1", "name": "shot", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": [
            {"type": "input_text", "text": "see"}, {"type": "input_image", "image_url": "https://img.example/a.png"}]},
    ]})
    assert result.body["messages"][-1] == {"role": "tool", "tool_call_id": "c1", "content": "see"}
    assert result.dropped == ["input[1].output[1]"]


REASONING_TURN = [
    {"role": "user", "content": "Add 2 and 3 with the tool."},
    {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Use add."}]},
    {"type": "function_call", "call_id": "call_1", "name": "add", "arguments": '{"a":2,"b":3}'},
    {"type": "function_call_output", "call_id": "call_1", "output": "5"},
    {"type": "reasoning", "id": "rs_2", "summary": [],
     "content": [{"type": "reasoning_text", "text": "It is 5."}], "encrypted_content": "gAAA"},
    {"role": "assistant", "content": "5"},
]


def test_reasoning_items_go_back_as_reasoning_content_when_the_upstream_takes_them():
    result = mapped({"input": REASONING_TURN}, ChatOptions(reasoning_history=True))
    assistant = [message for message in result.body["messages"] if message["role"] == "assistant"]
    assert assistant[0]["reasoning_content"] == "Use add." and assistant[0]["tool_calls"][0]["id"] == "call_1"
    assert assistant[1] == {"role": "assistant", "content": "5", "reasoning_content": "It is 5."}


def test_consecutive_reasoning_items_join_before_the_answer_they_led_to():
    result = mapped({"input": [
        {"role": "user", "content": "x"},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "One."},
                                                        {"type": "summary_text", "text": "Two."}]},
        {"type": "reasoning", "id": "rs_2", "summary": [{"type": "summary_text", "text": "Three."}]},
        {"role": "assistant", "content": "Answer."},
    ]}, ChatOptions(reasoning_history=True))
    assert result.body["messages"][1] == {"role": "assistant", "content": "Answer.",
                                          "reasoning_content": "One.\n\nTwo.\n\nThree."}


def test_reasoning_items_are_left_out_by_default():
    result = mapped({"input": REASONING_TURN})
    assert not any("reasoning_content" in message for message in result.body["messages"])
    assert result.dropped == []


def test_reasoning_before_a_user_message_has_no_assistant_message_to_join_and_is_left_out():
    result = mapped({"input": [{"type": "reasoning", "id": "rs", "summary": [{"type": "summary_text", "text": "t"}]},
                               {"role": "user", "content": "x"}]}, ChatOptions(reasoning_history=True))
    assert result.body["messages"] == [{"role": "user", "content": "x"}]


def test_builtin_tool_items_in_the_history_are_reported_dropped():
    result = mapped({"input": [
        {"role": "user", "content": "search"},
        {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search", "query": "q"}},
        {"role": "assistant", "content": "found"},
    ]})
    assert [message["role"] for message in result.body["messages"]] == ["user", "assistant"]
    assert result.dropped == ["input[1]"]


@pytest.mark.parametrize("request_body, param", [
    ({"input": 5}, "input"),
    ({"input": [5]}, "input[0]"),
    ({"input": [{"type": "bogus"}]}, "input[0].type"),
    ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
    ({"input": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "input[0].content[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_text", "text": 3}]}]}, "input[0].content[0].text"),
    ({"input": [{"role": "system", "content": [{"type": "input_image", "image_url": "https://a/b.png"}]}]},
     "input[0].content[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]},
     "input[0].content[0].image_url"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_url": "https://f/x.pdf"}]}]},
     "input[0].content[0].file_url"),
    ({"input": [{"role": "assistant", "content": [{"type": "input_image"}]}]}, "input[0].content[0].type"),
    ({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input[0].call_id"),
    ({"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]}, "input[0].arguments"),
    ({"input": [{"type": "function_call_output", "call_id": "c", "output": 3}]}, "input[0].output"),
    ({"input": [{"type": "reasoning", "summary": "x"}]}, "input[0].summary"),
    ({"input": []}, "input"),
    ({}, "input"),
    ({"instructions": 5, "input": "x"}, "instructions"),
])
def test_malformed_input_is_a_400_naming_the_responses_path(request_body, param):
    error = refused(request_body, ChatOptions(reasoning_history=True))
    assert error.param == param


def test_a_missing_model_is_a_400():
    with pytest.raises(InvalidRequest) as caught:
        responses_request_to_chat({"input": "x"})
    assert caught.value.param == "model"
    with pytest.raises(InvalidRequest):
        responses_request_to_chat(["not", "an", "object"])


def test_an_item_reference_names_an_item_of_the_chain_or_of_the_input():
    history = [{"id": "msg_a", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
               {"id": "msg_b", "type": "message", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": "hello", "annotations": []}]}]
    call = {"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"}
    result = mapped({"previous_response_id": "resp_1", "input": [
        {"type": "item_reference", "id": "msg_b"}, call,
        {"type": "function_call_output", "call_id": "call_1", "output": "ok"},
        {"type": "item_reference", "id": "fc_1"}]}, history=history)
    assert [(m["role"], m.get("content"), len(m.get("tool_calls", ()))) for m in result.body["messages"]] == [
        ("user", "hi", 0), ("assistant", "hello", 0), ("assistant", "hello", 1), ("tool", "ok", 0),
        ("assistant", None, 1)]
    # What a stored response lists as its input: the items named, not the references.
    assert result.input_items == [history[1], call, {"type": "function_call_output", "call_id": "call_1",
                                                     "output": "ok"}, call]


def test_an_unknown_item_reference_is_a_404_as_the_api_answers():
    error = refused({"input": [{"type": "item_reference", "id": "msg_1"}]}, status=404)
    assert (error.message, error.param, error.code) == ("Item with id 'msg_1' not found.", "input", None)
    # A reference names an item, never another reference.
    error = refused({"input": [{"type": "item_reference", "id": "msg_1"},
                               {"type": "item_reference", "id": "msg_2"}]}, status=404)
    assert "msg_1" in error.message


def test_previous_response_id_needs_the_history_the_caller_found():
    error = refused({"previous_response_id": "resp_1", "input": "more"}, status=404)
    assert error.param == "previous_response_id" and error.code == "previous_response_not_found"
    history = [{"role": "user", "content": "hi"},
               {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "hello"}]}]
    result = mapped({"previous_response_id": "resp_1", "instructions": "Sys", "input": "more"}, history=history)
    assert result.body["messages"] == [{"role": "system", "content": "Sys"}, {"role": "user", "content": "hi"},
                                       {"role": "assistant", "content": "hello"}, {"role": "user", "content": "more"}]
    assert result.state.echo["previous_response_id"] == "resp_1"


# --- tools ---------------------------------------------------------------------


def test_function_tools_are_nested_and_keep_strict():
    result = mapped({"input": "x", "tools": [
        {"type": "function", "name": "get", "description": "Get it.", "strict": True,
         "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"],
                        "additionalProperties": False}},
        {"type": "function", "name": "bare", "parameters": None, "strict": None},
    ]}, valid_request=False)
    assert result.body["tools"] == [
        {"type": "function", "function": {"name": "get", "description": "Get it.", "strict": True, "parameters": {
            "type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"], "additionalProperties": False}}},
        {"type": "function", "function": {"name": "bare", "parameters": {"type": "object", "properties": {}}}},
    ]
    assert [tool["strict"] for tool in result.state.echo["tools"]] == [True, True]  # the API's default, echoed


APPLY_PATCH = {"type": "custom", "name": "apply_patch", "description": "Edit files.",
               "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch hunk+ end_patch"}}


def test_tools_with_null_fields_are_echoed_without_them():
    """The Response's tool fields are never null; a namespace's description is a string."""
    agents = {"type": "namespace", "name": "agents", "description": None,
              "tools": [{"type": "custom", "name": "send"}]}
    result = mapped({"input": "x", "tools": [{**APPLY_PATCH, "description": None, "format": None}, agents]},
                    valid_request=False)
    assert result.state.echo["tools"] == [{"type": "custom", "name": "apply_patch"}, {**agents, "description": ""}]
    check_response(completion_to_response({"choices": [{"message": {"content": "x"}, "finish_reason": "stop"}]},
                                          result.state))


def test_a_custom_tool_becomes_a_function_taking_one_string_with_its_grammar_told():
    result = mapped({"input": "x", "tools": [APPLY_PATCH, {"type": "custom", "name": "note"}]})
    patch, note = (tool["function"] for tool in result.body["tools"])
    assert patch["name"] == "apply_patch"
    assert patch["parameters"] == {"type": "object", "properties": {"input": {
        "type": "string", "description": "The tool's raw input text."}}, "required": ["input"],
        "additionalProperties": False}
    assert patch["description"].startswith("Edit files.") and "lark" in patch["description"]
    assert "start: begin_patch hunk+ end_patch" in patch["description"]
    assert note["parameters"]["required"] == ["input"]
    assert result.state.tools["apply_patch"].kind == "custom"
    assert result.state.echo["tools"][0] == APPLY_PATCH


def test_custom_tool_calls_in_the_history_are_sent_as_their_function():
    result = mapped({"tools": [APPLY_PATCH], "input": [
        {"type": "custom_tool_call", "call_id": "call_p", "name": "apply_patch", "input": "*** Begin Patch\n\"x\""},
        {"type": "custom_tool_call_output", "call_id": "call_p", "output": "Done"},
    ]})
    call = result.body["messages"][0]["tool_calls"][0]
    assert call["function"]["name"] == "apply_patch"
    assert json.loads(call["function"]["arguments"]) == {"input": "*** Begin Patch\n\"x\""}
    assert result.body["messages"][1] == {"role": "tool", "tool_call_id": "call_p", "content": "Done"}


NAMESPACE = {"type": "namespace", "name": "agents", "description": "Sub-agents.", "tools": [
    {"type": "function", "name": "spawn", "description": "Start one.", "parameters": {"type": "object", "properties": {}}},
    {"type": "custom", "name": "send"},
]}


def test_namespace_tools_become_one_function_per_member_with_names_that_map_back():
    result = mapped({"input": "x", "tools": [NAMESPACE]})
    spawn, send = (tool["function"] for tool in result.body["tools"])
    assert spawn["name"] == "agents__spawn" and spawn["description"] == "Sub-agents.\n\nStart one."
    assert send["name"] == "agents__send" and send["parameters"]["required"] == ["input"]
    assert result.state.tools["agents__spawn"].namespace == "agents"
    assert result.state.tools["agents__spawn"].name == "spawn"
    assert result.state.tools["agents__send"].kind == "custom"
    history = mapped({"input": [{"type": "function_call", "call_id": "c", "namespace": "agents", "name": "spawn",
                                 "arguments": "{}"}], "tools": [NAMESPACE]}, valid_request=False)
    assert history.body["messages"][0]["tool_calls"][0]["function"]["name"] == "agents__spawn"


def test_duplicate_tool_names_are_a_400():
    error = refused({"input": "x", "tools": [{"type": "function", "name": "a"}, {"type": "custom", "name": "a"}]})
    assert error.param == "tools[1].name"


def test_builtin_tools_are_left_out_and_reported():
    result = mapped({"input": "x", "tools": [{"type": "web_search"}, {"type": "function", "name": "f", "parameters": NO_PARAMETERS},
                                             {"type": "code_interpreter", "container": {"type": "auto"}}]},
                    valid_request=False)
    assert [tool["function"]["name"] for tool in result.body["tools"]] == ["f"]
    assert result.dropped == ["tools[0].web_search", "tools[2].code_interpreter"]


def test_a_request_with_only_builtin_tools_sends_no_tools_and_no_tool_settings():
    result = mapped({"input": "x", "tools": [{"type": "web_search"}], "tool_choice": "auto",
                     "parallel_tool_calls": False})
    assert "tools" not in result.body and "tool_choice" not in result.body and "parallel_tool_calls" not in result.body
    assert result.dropped == ["tools[0].web_search", "tool_choice", "parallel_tool_calls"]
    assert refused({"input": "x", "tools": [{"type": "web_search"}], "tool_choice": "required"}).param == "tool_choice"


def test_an_option_makes_builtin_tools_a_400():
    error = refused({"input": "x", "tools": [{"type": "function", "name": "f"}, {"type": "web_search"}]},
                    ChatOptions(refuse_builtin_tools=True))
    assert error.param == "tools[1].type" and "web_search" in error.message


def test_an_unknown_tool_type_is_reported_dropped():
    result = mapped({"input": "x", "tools": [{"type": "hologram"}, {"type": "function", "name": "f"}]},
                    valid_request=False)
    assert result.dropped == ["tools[0]"]


NO_PARAMETERS = {"type": "object", "properties": {}}
TOOLS = [{"type": "function", "name": "f", "parameters": NO_PARAMETERS},
         {"type": "function", "name": "g", "parameters": NO_PARAMETERS}, APPLY_PATCH, NAMESPACE]


@pytest.mark.parametrize("choice, chat_choice", [
    ("auto", "auto"), ("none", "none"), ("required", "required"),
    ({"type": "function", "name": "g"}, {"type": "function", "function": {"name": "g"}}),
    ({"type": "custom", "name": "apply_patch"}, {"type": "function", "function": {"name": "apply_patch"}}),
    ({"type": "function", "name": "spawn"}, {"type": "function", "function": {"name": "agents__spawn"}}),
])
def test_tool_choice_in_every_form(choice, chat_choice):
    result = mapped({"input": "x", "tools": TOOLS, "tool_choice": choice})
    assert result.body["tool_choice"] == chat_choice
    assert result.state.echo["tool_choice"] == choice


def test_allowed_tools_leaves_the_others_out():
    result = mapped({"input": "x", "tools": TOOLS, "tool_choice": {
        "type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "g"},
                                                               {"type": "custom", "name": "apply_patch"}]}})
    assert [tool["function"]["name"] for tool in result.body["tools"]] == ["g", "apply_patch"]
    assert result.body["tool_choice"] == "required"
    assert result.adjusted == ["tool_choice=allowed_tools->required"]


@pytest.mark.parametrize("choice", [{"type": "web_search_preview"}, {"type": "file_search"},
                                    {"type": "code_interpreter"}, {"type": "image_generation"},
                                    {"type": "computer_use_preview"}, {"type": "mcp", "server_label": "s"}])
def test_a_tool_choice_forcing_a_builtin_tool_is_a_400_naming_it(choice):
    error = refused({"input": "x", "tools": [{"type": "function", "name": "f"}], "tool_choice": choice})
    assert error.param == "tool_choice" and choice["type"] in error.message


@pytest.mark.parametrize("choice, param", [
    ({"type": "function", "name": "nope"}, "tool_choice.name"),
    ({"type": "custom", "name": "f"}, "tool_choice.name"),
    ("sometimes", "tool_choice"),
    ({"type": "allowed_tools", "mode": "any", "tools": []}, "tool_choice"),
])
def test_a_tool_choice_naming_no_offered_tool_is_a_400(choice, param):
    assert refused({"input": "x", "tools": TOOLS, "tool_choice": choice}).param == param


def test_parallel_tool_calls_is_copied():
    result = mapped({"input": "x", "tools": TOOLS[:1], "parallel_tool_calls": False})
    assert result.body["parallel_tool_calls"] is False and result.state.echo["parallel_tool_calls"] is False


# --- output format, reasoning, limits, the rest ------------------------------------


@pytest.mark.parametrize("text_format, response_format", [
    ({"type": "text"}, None),
    ({"type": "json_object"}, {"type": "json_object"}),
    ({"type": "json_schema", "name": "point", "strict": True, "description": "A point.",
      "schema": {"type": "object", "properties": {"x": {"type": "number"}}}},
     {"type": "json_schema", "json_schema": {"name": "point", "strict": True, "description": "A point.",
                                             "schema": {"type": "object", "properties": {"x": {"type": "number"}}}}}),
])
def test_text_format_becomes_response_format(text_format, response_format):
    result = mapped({"input": "x", "text": {"format": text_format, "verbosity": "low"}})
    assert result.body.get("response_format") == response_format
    assert result.body["verbosity"] == "low"
    assert result.state.echo["text"] == {"format": text_format, "verbosity": "low"}


def test_reasoning_effort_is_mapped_and_summary_reported():
    result = mapped({"input": "x", "reasoning": {"effort": "high", "summary": "auto"}})
    assert result.body["reasoning_effort"] == "high"
    assert result.dropped == ["reasoning.summary"]
    assert result.state.echo["reasoning"] == {"effort": "high", "summary": "auto"}


@pytest.mark.parametrize("options, key", [(None, "max_completion_tokens"),
                                          (ChatOptions(max_tokens_param="max_tokens"), "max_tokens")])
def test_max_output_tokens_goes_where_the_upstream_reads_it(options, key):
    result = mapped({"input": "x", "max_output_tokens": 300}, options)
    assert result.body[key] == 300 and result.state.echo["max_output_tokens"] == 300


def test_parameters_chat_has_are_copied():
    result = mapped({"input": "x", "temperature": 0.2, "top_p": 0.9, "user": "u1", "safety_identifier": "s1",
                     "metadata": {"k": "v"}, "prompt_cache_key": "pk", "service_tier": "flex"})
    assert {key: result.body[key] for key in ("temperature", "top_p", "user", "safety_identifier", "metadata",
                                              "prompt_cache_key", "service_tier")} == {
        "temperature": 0.2, "top_p": 0.9, "user": "u1", "safety_identifier": "s1", "metadata": {"k": "v"},
        "prompt_cache_key": "pk", "service_tier": "flex"}
    assert result.dropped == []


def test_a_service_tier_chat_lacks_is_echoed_and_reported():
    result = mapped({"input": "x", "service_tier": "fast"})
    assert "service_tier" not in result.body and result.dropped == ["service_tier"]
    assert result.state.echo["service_tier"] == "fast"


def test_reasoning_keys_other_than_effort_and_summary_are_reported_not_echoed():
    result = mapped({"input": "x", "reasoning": {"mode": "fast"}}, valid_request=False)
    assert result.dropped == ["reasoning.mode"] and "mode" not in result.state.echo["reasoning"]


def test_stream_asks_for_usage():
    result = mapped({"input": "x", "stream": True})
    assert result.body["stream"] is True and result.body["stream_options"] == {"include_usage": True}
    assert result.state.stream


def test_what_codex_sends_on_every_request_is_reported_never_refused():
    result = mapped({"input": "x", "store": False, "include": ["reasoning.encrypted_content"], "stream": True,
                     "prompt_cache_key": "conv-1", "reasoning": {"effort": "medium", "summary": "auto"},
                     "client_metadata": {"x-codex-turn": "1"}, "tools": [{"type": "web_search"}]},
                    valid_request=False)
    # Without a key to seal reasoning with (the proxy always has one), include's value is left out too.
    assert sorted(result.dropped) == sorted(["store", "include[0]", "reasoning.summary", "client_metadata",
                                             "tools[0].web_search"])
    assert result.state.echo["store"] is False


@pytest.mark.parametrize("key", ["conversation", "prompt"])
def test_stored_conversations_and_prompts_are_a_400(key):
    assert refused({"input": "x", key: {"id": "conv_1"}}).param == key


@pytest.mark.parametrize("request_body, param", [
    ({"temperature": 3}, "temperature"), ({"top_p": "1"}, "top_p"), ({"max_output_tokens": 0}, "max_output_tokens"),
    ({"max_output_tokens": True}, "max_output_tokens"), ({"text": {"format": {"type": "xml"}}}, "text.format.type"),
    ({"text": {"format": {"type": "json_schema", "name": "n"}}}, "text.format.schema"),
    ({"text": {"verbosity": "loud"}}, "text.verbosity"), ({"text": "json"}, "text"),
    ({"reasoning": {"effort": "max"}}, "reasoning.effort"), ({"reasoning": []}, "reasoning"),
    ({"metadata": {"k": 1}}, "metadata"), ({"user": 7}, "user"), ({"safety_identifier": "s" * 65}, "safety_identifier"),
    ({"stream": "yes"}, "stream"), ({"parallel_tool_calls": 1}, "parallel_tool_calls"), ({"tools": {}}, "tools"),
    ({"tools": [{"name": "f"}]}, "tools[0].type"), ({"tools": [{"type": "function"}]}, "tools[0].name"),
    ({"tools": [{"type": "function", "name": "f", "strict": "yes"}]}, "tools[0].strict"),
    ({"tools": [{"type": "custom", "name": "c", "format": {"type": "grammar", "syntax": "ebnf"}}]},
     "tools[0].format"),
    ({"tools": [{"type": "namespace", "name": "n", "tools": []}]}, "tools[0].tools"),
    ({"store": "no"}, "store"), ({"previous_response_id": 1}, "previous_response_id"),
    ({"reasoning": {"summary": "long"}}, "reasoning.summary"), ({"truncation": "sometimes"}, "truncation"),
    ({"top_logprobs": 21}, "top_logprobs"), ({"service_tier": "bogus"}, "service_tier"),
    ({"max_tool_calls": "3"}, "max_tool_calls"), ({"background": 1}, "background"),
])
def test_malformed_parameters_are_a_400_naming_them(request_body, param):
    assert refused({"input": "x", **request_body}).param == param


def test_null_parameters_count_as_not_given():
    result = mapped({"input": "x", "temperature": None, "tools": None, "tool_choice": None, "text": None,
                     "store": None, "include": None}, valid_request=False)
    assert result.body == {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}
    assert result.dropped == []


def test_the_table_knows_every_parameter_of_the_spec():
    """A parameter the spec defines is either mapped, refused or reported; none is forwarded unchecked."""
    unknown = sorted(key for key in create_response_keys() if key not in RESPONSES_PARAMS)
    result = mapped({"input": "x", **{key: {"a": 1} for key in unknown}}, valid_request=False)
    assert sorted(result.dropped) == unknown
    assert set(result.body) == {"model", "messages"}


# --- recorded traffic ----------------------------------------------------------------

RECORDED = [recording for recording in realdata.recordings(api="responses") if recording.request]


@pytest.mark.parametrize("recording", RECORDED, ids=[recording.name for recording in RECORDED])
def test_recorded_responses_requests_map_to_valid_chat_requests(recording):
    request = copy.deepcopy(recording.request)
    history = [] if request.get("previous_response_id") else None
    try:
        result = responses_request_to_chat(request, ChatOptions(reasoning_history=True), history)
    except InvalidRequest as error:
        assert recording.name in realdata_refused and error.param == realdata_refused[recording.name]
        return
    check_chat_request(result.body)
    assert result.body["model"] == recording.request["model"]
    assert all(entry.startswith(("tools[", "input[", "include", "store", "reasoning.", "background", "tool_choice"))
               for entry in result.dropped), result.dropped


realdata_refused = {  # an invalid temperature (the API refused it too), and web_search forced by tool_choice
    "pydantic-ai/test_openai_responses_model_http_error#1": "temperature",
    "openai-dotnet/ResponsesToolTests_WebSearchCall#1": "tool_choice",
    "openai-dotnet/ResponsesToolTests_WebSearchCallStreaming#1": "tool_choice",
    "openai-dotnet/ResponsesToolTests_WebSearchCallWithReasoning#1": "tool_choice",
}


# --- any request ----------------------------------------------------------------------

_text = st.text(max_size=20)
_parts = st.lists(st.one_of(
    st.fixed_dictionaries({"type": st.just("input_text"), "text": _text}),
    st.fixed_dictionaries({"type": st.just("input_image"), "image_url": st.just("https://img.example/a.png")},
                          optional={"detail": st.sampled_from(["auto", "low", "high", "original"])}),
    st.fixed_dictionaries({"type": st.just("input_file"), "file_id": st.just("file-1")}),
), min_size=1, max_size=3)
_items = st.lists(st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "developer"]), "content": _text}),
    st.fixed_dictionaries({"type": st.just("message"), "role": st.just("user"), "content": _parts}),
    st.fixed_dictionaries({"type": st.just("message"), "role": st.just("assistant"), "content": st.lists(
        st.fixed_dictionaries({"type": st.just("output_text"), "text": _text, "annotations": st.just([])}),
        min_size=1, max_size=2)}),
    st.fixed_dictionaries({"type": st.just("function_call"), "call_id": st.sampled_from(["c1", "c2"]),
                           "name": st.sampled_from(["f", "g"]), "arguments": st.just("{}")}),
    st.fixed_dictionaries({"type": st.just("custom_tool_call"), "call_id": st.just("c3"),
                           "name": st.just("apply_patch"), "input": _text}),
    st.fixed_dictionaries({"type": st.sampled_from(["function_call_output", "custom_tool_call_output"]),
                           "call_id": st.sampled_from(["c1", "c2", "c3"]), "output": _text}),
    st.fixed_dictionaries({"type": st.just("reasoning"), "id": st.just("rs_1"), "summary": st.lists(
        st.fixed_dictionaries({"type": st.just("summary_text"), "text": _text}), max_size=2)}),
    st.fixed_dictionaries({"type": st.just("web_search_call"), "id": st.just("ws_1"), "status": st.just("completed"),
                           "action": st.just({"type": "search", "query": "q"})}),
), min_size=1, max_size=6)
_requests = st.fixed_dictionaries({"model": st.just(MODEL), "input": st.one_of(_text, _items)}, optional={
    "instructions": _text, "tools": st.lists(st.sampled_from(TOOLS + [{"type": "web_search"}]), max_size=4,
                                             unique_by=lambda tool: tool.get("name", tool["type"])),
    "tool_choice": st.sampled_from(["auto", "none", "required", {"type": "function", "name": "f"},
                                    {"type": "web_search_preview"}]),
    "parallel_tool_calls": st.booleans(), "temperature": st.floats(0, 2), "top_p": st.floats(0, 1),
    "max_output_tokens": st.integers(16, 10_000), "stream": st.booleans(), "store": st.booleans(),
    "text": st.fixed_dictionaries({}, optional={"format": st.sampled_from([{"type": "text"}, {"type": "json_object"}]),
                                                "verbosity": st.sampled_from(["low", "medium", "high"])}),
    "reasoning": st.fixed_dictionaries({}, optional={"effort": st.sampled_from(["low", "medium", "high"]),
                                                     "summary": st.sampled_from(["auto", "detailed"])}),
    "metadata": st.dictionaries(st.text(min_size=1, max_size=8), _text, max_size=3), "user": _text,
    "include": st.just(["reasoning.encrypted_content"]), "service_tier": st.sampled_from(["auto", "flex", "priority"]),
    "prompt_cache_key": _text, "previous_response_id": st.just("resp_1"), "truncation": st.just("auto"),
    "top_logprobs": st.integers(0, 20), "max_tool_calls": st.integers(1, 5), "background": st.booleans(),
})


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(request=st.one_of(_requests, mutated(_requests)), reasoning_history=st.booleans(), history=st.booleans())
def test_any_request_maps_to_a_valid_chat_request_or_a_clear_error(request, reasoning_history, history):
    try:
        result = responses_request_to_chat(copy.deepcopy(request), ChatOptions(reasoning_history=reasoning_history),
                                   [{"role": "user", "content": "before"}] if history else None)
    except ProxyError as error:
        assert error.status in (400, 404) and error.message
        check_error_body(error.body())
        return
    check_chat_request(result.body)
    json.dumps(result.body)
    assert all(isinstance(entry, str) for entry in result.dropped)
    assert {tool["function"]["name"] for tool in result.body.get("tools", ())} <= set(result.state.tools)
    assert "tool_choice" not in result.body or result.body.get("tools")
    check_response(completion_to_response({"choices": [{"message": {"content": "x"}, "finish_reason": "stop"}]},
                                    result.state))  # the request's settings, echoed, are valid too
