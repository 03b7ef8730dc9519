"""An upstream's refusal of a translated request names the chat parameters the client sent."""

from __future__ import annotations

import openai
import pytest

import realdata
from fake_upstream import Reply, Stream, build_response, error_body, message_item, reasoning_item, stream_events
from proxy.errors import ProxyError
from proxy.translate import (MappingOptions, chat_param, chat_to_responses, kept_reasoning, name_chat_params,
                             restore_reasoning)
from spec_check import check_error_body

pytestmark = pytest.mark.core  # the pure translation core: `pytest -m core` runs these alone

CHAT = {
    "model": "o3-pro",
    "max_completion_tokens": 500,
    "reasoning_effort": "high",
    "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}},
    "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {
                  "type": "object", "properties": {"when": {"type": "string"}}}}},
              {"type": "custom", "custom": {"name": "shell"}},
              {"type": "function", "function": {"name": "now"}}],
    "functions": [{"name": "legacy", "parameters": {"type": "object"}}],
    "web_search_options": {"search_context_size": "low"},
    "tool_choice": {"type": "function", "function": {"name": "lookup"}},
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Look at this:"},
                                     {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                                     {"type": "file", "file": {"file_id": "file-1"}}]},
        {"role": "assistant", "content": "Looking.", "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "lookup", "arguments": "{}"}},
            {"id": "call_b", "type": "custom", "custom": {"name": "shell", "input": "ls"}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "found"},
        {"role": "tool", "tool_call_id": "call_b", "content": "a.txt"},
        {"role": "system", "content": "Answer in JSON."},
    ],
}


@pytest.mark.parametrize("param, expected", [
    ("input", ("messages", True)),
    ("input[0]", ("messages[1]", True)),
    ("input[0].content[0].text", ("messages[1].content[0].text", True)),
    ("input[0].content[1].image_url", ("messages[1].content[1].image_url.url", True)),
    ("input[0].content[1].detail", ("messages[1].content[1].image_url.detail", True)),
    ("input[0].content[2].file_id", ("messages[1].content[2].file.file_id", True)),
    # the answer's text and its tool calls, which are items of their own upstream
    ("input[1].content[0].text", ("messages[2].content", False)),
    ("input[2].arguments", ("messages[2].tool_calls[0].function.arguments", True)),
    ("input[2].call_id", ("messages[2].tool_calls[0].id", True)),
    ("input[3].input", ("messages[2].tool_calls[1].custom.input", True)),
    ("input[4].output", ("messages[3].content", True)),
    ("input[5].call_id", ("messages[4].tool_call_id", True)),
    ("input[6].content", ("messages[5].content", True)),
    ("input[6].status", ("messages[5]", False)),
    ("instructions", ("messages", False)),
    ("tools[0].parameters", ("tools[0].function.parameters", True)),
    ("tools[0].parameters.properties.when", ("tools[0].function.parameters.properties.when", True)),
    ("tools[1].name", ("tools[1].custom.name", True)),
    ("tools[1].defer_loading", ("tools[1]", False)),
    ("tools[2].strict", ("tools[2].function.strict", True)),  # sent as false, where the client said nothing
    ("tools[2].parameters", ("tools[2].function.parameters", True)),
    ("tools[2].parameters.properties", ("tools[2].function", False)),  # inside the proxy's empty schema
    ("tools[3].parameters", ("functions[0].parameters", True)),
    ("tools[4].search_context_size", ("web_search_options.search_context_size", True)),
    ("tools[4].user_location", ("web_search_options", False)),
    ("text.format", ("response_format", True)),
    ("text.format.schema", ("response_format.json_schema.schema", True)),
    ("max_output_tokens", ("max_completion_tokens", True)),
    ("reasoning.effort", ("reasoning_effort", True)),
    ("tool_choice.name", ("tool_choice.function.name", True)),
    # named alike, or nothing the client sent
    ("model", None), ("metadata.team", None), ("reasoning.summary", None), ("include", None), ("background", None),
    ("tools[9]", None), ("input[99].content", None), ("input[0].content[1.5]", None), ("", None),
])
def test_responses_paths_become_chat_paths(param, expected):
    assert chat_param(param, chat_to_responses(CHAT)) == expected


def test_the_items_and_tools_the_paths_above_point_at():
    body = chat_to_responses(CHAT).upstream.body
    assert [item.get("type", item.get("role")) for item in body["input"]] == [
        "user", "message", "function_call", "custom_tool_call", "function_call_output", "function_call_output",
        "developer"]
    assert [tool["type"] for tool in body["tools"]] == ["function", "custom", "function", "function", "web_search"]


def test_tools_the_proxy_added_are_left_alone():
    translation = chat_to_responses({"model": "o3-deep-research", "messages": [{"role": "user", "content": "x"}]},
                                    MappingOptions(require_search_tool=True))
    assert translation.upstream.body["tools"] == [{"type": "web_search_preview"}]
    assert chat_param("tools[0].type", translation) is None


def test_legacy_function_calls_and_results():
    translation = chat_to_responses({"model": "o3-pro", "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}},
        {"role": "function", "name": "f", "content": "done"}], "function_call": {"name": "f"}})
    assert chat_param("input[1].arguments", translation) == ("messages[1].function_call.arguments", True)
    assert chat_param("input[2].call_id", translation) == ("messages[2].name", True)
    assert chat_param("tool_choice.name", translation) == ("function_call.name", True)


def test_an_image_sent_as_its_url_alone():
    translation = chat_to_responses({"model": "o3-pro", "messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": "https://example.com/a.png"}]}]})
    assert chat_param("input[0].content[0].image_url", translation) == ("messages[0].content[0].image_url", True)


def test_calls_are_found_by_their_order_and_refusals_by_their_message():
    """A client may repeat a call id; what holds is the order of a message's calls. An assistant turn that is
    only a refusal has no content to point at."""
    translation = chat_to_responses({"model": "o3-pro", "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": None, "refusal": "No.", "tool_calls": [
            {"id": "call_1", "type": "custom", "custom": {"name": "shell", "input": "ls"}},
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]})
    assert [item.get("type") for item in translation.upstream.body["input"]] == [
        None, "message", "custom_tool_call", "function_call"]
    assert chat_param("input[1].content[0].refusal", translation) == ("messages[1]", False)
    assert chat_param("input[2].input", translation) == ("messages[1].tool_calls[0].custom.input", True)
    assert chat_param("input[3].name", translation) == ("messages[1].tool_calls[1].function.name", True)


def test_restored_reasoning_shifts_the_items_not_the_messages():
    """Reasoning put back in front of earlier answers (and their messages split by phase) are items the
    client never sent: they name nothing, and the items after them still name their own messages."""
    answer = build_response({"include": ["reasoning.encrypted_content"]}, [
        reasoning_item(["Thinking."]), {**message_item("Let me see. "), "phase": "commentary"},
        {**message_item("It is 4."), "phase": "final_answer"}])
    keys, kept = kept_reasoning(answer)
    translation = chat_to_responses({"model": "gpt-5.5", "messages": [
        {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "Let me see. It is 4."},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]},
        MappingOptions(keep_reasoning=True))
    translation = restore_reasoning(translation, {key: kept for key in keys})
    kinds = [item.get("type", item.get("role")) for item in translation.upstream.body["input"]]
    assert kinds == ["user", "reasoning", "message", "message", "user"]
    assert chat_param("input[1].encrypted_content", translation) is None
    assert chat_param("input[2]", translation) == chat_param("input[3]", translation) == ("messages[1]", True)
    assert chat_param("input[4].content[0].image_url", translation) == ("messages[2].content[0].image_url.url", True)


@pytest.mark.parametrize("message, param, expected", [
    ("Invalid 'input[0].content[1].image_url'. Expected a valid URL.", "input[0].content[1].image_url",
     ("Invalid 'messages[1].content[1].image_url.url'. Expected a valid URL.", "messages[1].content[1].image_url.url")),
    ('Invalid type for "max_output_tokens": expected an integer.', "max_output_tokens",
     ('Invalid type for "max_completion_tokens": expected an integer.', "max_completion_tokens")),
    ("Invalid 'input[6].status'.", "input[6].status", ("Invalid 'input[6].status'.", "messages[5]")),
    ("The model 'x' does not exist.", "model", ("The model 'x' does not exist.", "model")),
    ("The input was cut.", None, ("The input was cut.", None)),
])
def test_the_message_is_reworded_only_where_the_whole_path_maps(message, param, expected):
    error = ProxyError(400, message, param=param)
    error = name_chat_params(error, chat_to_responses(CHAT))
    assert (error.message, error.param) == expected


def recorded_schema_error():
    """The error OpenAI's chat endpoint gives for a strict tool schema without ``additionalProperties``."""
    recording = realdata.get("openai-dotnet/ChatToolTests_StructuredOutputs(WithoutSchema,Strict,FailureExpected)#1")
    assert recording.status == 400
    return recording.body["error"]


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_schema_refusal_reads_as_chat_reports_it(client, fake, stream):
    chat_error = recorded_schema_error()
    assert chat_error["param"] == "tools[0].function.parameters"
    # The Responses endpoint names the same place by its own path.
    fake.script(Reply(status=400, json=error_body(chat_error["message"], param="tools[0].parameters",
                                                  code=chat_error["code"])))
    tool = {"type": "function", "function": {"name": "get_favorite_color_for_day_of_week", "strict": True,
                                             "parameters": {"type": "object", "properties": {}}}}
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(model="o3-pro", messages=[{"role": "user", "content": "x"}], tools=[tool],
                                       stream=stream)
    check_error_body({"error": error.value.body})
    assert error.value.body == chat_error


def test_an_image_refusal_names_the_chat_content_part(client, fake):
    fake.script(Reply(status=400, json=error_body(
        "Invalid 'input[0].content[1].image_url'. Expected a valid URL, but got a value with an invalid format.",
        param="input[0].content[1].image_url", code="invalid_value")))
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(model="o3-pro", messages=[
            {"role": "system", "content": "Describe images."},
            {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                         {"type": "image_url", "image_url": {"url": "not a url"}}]}])
    assert error.value.body["param"] == "messages[1].content[1].image_url.url"
    assert error.value.body["message"].startswith("Invalid 'messages[1].content[1].image_url.url'. Expected")


def test_an_error_event_mid_stream_names_the_chat_parameter(client, fake):
    """An upstream that refuses the request only once its stream has begun (an ``error`` event)."""
    created = stream_events(build_response(None, [message_item("x")]))[0]
    fake.script(Stream(events=[created, {
        "type": "error", "code": "invalid_value", "param": "input[0].content[0].image_url",
        "message": "Invalid 'input[0].content[0].image_url'. Expected a valid URL."}]))
    with pytest.raises(openai.APIError) as error:
        list(client.chat.completions.create(model="o3-pro", stream=True, messages=[
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "not a url"}}]}]))
    assert error.value.body["param"] == "messages[0].content[0].image_url.url"
    assert error.value.message == "Invalid 'messages[0].content[0].image_url.url'. Expected a valid URL."
