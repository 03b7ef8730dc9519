"""Chat request -> Responses request: every mapping rule, checked against the official schema."""

from __future__ import annotations

import hashlib

import pytest

from proxy.errors import InvalidRequest
from proxy.translate import MappingOptions, chat_to_responses, restore_reasoning
from spec_check import check_create_response

pytestmark = pytest.mark.core  # the pure translation core: `pytest -m core` runs these alone


def translate(**chat):
    chat.setdefault("model", "o3-pro")
    chat.setdefault("messages", [{"role": "user", "content": "hi"}])
    translation = chat_to_responses(chat)
    check_create_response(translation.upstream.body)
    return translation


def body(**chat):
    return translate(**chat).upstream.body


def test_minimal_request():
    assert body() == {
        "model": "o3-pro",
        "input": [{"role": "user", "content": "hi"}],
        "reasoning": {"summary": "auto"},
        "store": False,
    }


def test_leading_system_and_developer_messages_become_instructions():
    result = body(messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {"role": "user", "content": "hi"},
    ])
    assert result["instructions"] == "Be brief.\n\nAnswer in French."
    assert result["input"] == [{"role": "user", "content": "hi"}]


def test_instructions_are_identical_across_turns():
    system = {"role": "system", "content": "Be brief."}
    first = body(messages=[system, {"role": "user", "content": "a"}])
    later = body(messages=[system, {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                           {"role": "user", "content": "c"}])
    assert first["instructions"] == later["instructions"]


def test_later_system_message_stays_in_place_as_developer_message():
    result = body(messages=[
        {"role": "user", "content": "a"},
        {"role": "system", "content": "The user uploaded a file."},
        {"role": "user", "content": "b"},
    ])
    assert "instructions" not in result
    assert result["input"][1] == {"role": "developer", "content": "The user uploaded a file."}


def test_user_content_parts():
    result = body(messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}},
        {"type": "file", "file": {"file_id": "file-123"}},
    ]}])
    assert result["input"][0]["content"] == [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "high"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"},
        {"type": "input_file", "file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"},
        {"type": "input_file", "file_id": "file-123"},
    ]


def test_input_audio_is_a_clear_400():
    with pytest.raises(InvalidRequest) as error:
        translate(messages=[{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}])
    assert error.value.status == 400
    assert error.value.param == "messages[0].content[0]"
    assert "audio" in error.value.message.lower()


def test_assistant_history_with_text_tool_calls_and_extra_fields():
    result = body(messages=[
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "Let me check.", "reasoning_content": "thinking...", "name": "bot",
         "tool_calls": [
             {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
             {"id": "call_2", "type": "function", "function": {"name": "time", "arguments": "{}"}},
         ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "12:00"},
                                                               {"type": "text", "text": " CET"}]},
    ])
    assert result["input"][1:] == [
        {"type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": "Let me check.", "annotations": []}]},
        {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{\"city\":\"Paris\"}"},
        {"type": "function_call", "call_id": "call_2", "name": "time", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "call_2", "output": "12:00 CET"},
    ]


def test_assistant_refusal_is_kept_and_empty_content_dropped():
    result = body(messages=[
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": None, "refusal": "I can't help with that."},
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "c"},
    ])
    assert result["input"][1] == {"type": "message", "role": "assistant",
                                  "content": [{"type": "refusal", "refusal": "I can't help with that."}]}
    assert [item.get("role") for item in result["input"]] == ["user", "assistant", "user", "user"]


def test_legacy_functions_and_function_role():
    result = body(
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": None, "function_call": {"name": "weather", "arguments": "{}"}},
            {"role": "function", "name": "weather", "content": "sunny"},
        ],
        functions=[{"name": "weather", "parameters": {"type": "object", "properties": {}}}],
        function_call={"name": "weather"},
    )
    call, output = result["input"][1], result["input"][2]
    assert call["type"] == "function_call" and call["name"] == "weather"
    assert output == {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}
    assert result["tools"] == [{"type": "function", "name": "weather",
                                "parameters": {"type": "object", "properties": {}}, "strict": False}]
    assert result["tool_choice"] == {"type": "function", "name": "weather"}


def test_tools_are_flattened_and_strict_is_always_sent():
    result = body(tools=[
        {"type": "function", "function": {"name": "a", "description": "A.", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "b", "strict": True, "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "c"}},
    ], parallel_tool_calls=False)
    assert result["tools"] == [
        {"type": "function", "name": "a", "description": "A.", "parameters": {"type": "object"}, "strict": False},
        {"type": "function", "name": "b", "parameters": {"type": "object"}, "strict": True},
        {"type": "function", "name": "c", "parameters": {"type": "object", "properties": {}}, "strict": False},
    ]
    assert result["parallel_tool_calls"] is False


@pytest.mark.parametrize("choice, expected", [
    ("auto", "auto"),
    ("none", "none"),
    ("required", "required"),
    ({"type": "function", "function": {"name": "a"}}, {"type": "function", "name": "a"}),
    ({"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [
        {"type": "function", "function": {"name": "a"}}]}},
     {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "a"}]}),
])
def test_tool_choice_in_every_form(choice, expected):
    tools = [{"type": "function", "function": {"name": "a", "parameters": {"type": "object"}}}]
    assert body(tools=tools, tool_choice=choice)["tool_choice"] == expected


@pytest.mark.parametrize("chat, expected, adjusted", [
    ({"max_tokens": 500}, 500, []),
    ({"max_completion_tokens": 700, "max_tokens": 500}, 700, []),
    ({"max_tokens": 5}, 16, ["max_tokens=5->16"]),
])
def test_token_limits(chat, expected, adjusted):
    translation = translate(**chat)
    assert translation.upstream.body["max_output_tokens"] == expected
    assert list(translation.adjusted) == adjusted


@pytest.mark.parametrize("value", [0, -3, "10", 1.5, True])
def test_bad_token_limit_is_400(value):
    with pytest.raises(InvalidRequest) as error:
        translate(max_tokens=value)
    assert error.value.param == "max_tokens"


def test_reasoning_effort_and_summary():
    assert body(reasoning_effort="high")["reasoning"] == {"effort": "high", "summary": "auto"}
    off = chat_to_responses({"model": "o3-pro", "messages": [{"role": "user", "content": "x"}],
                             "reasoning_effort": "low"}, MappingOptions(reasoning_summary=None)).upstream.body
    assert off["reasoning"] == {"effort": "low"}
    with pytest.raises(InvalidRequest):
        translate(reasoning_effort="maximum")


def test_response_format_and_verbosity():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
              "additionalProperties": False}
    result = body(response_format={"type": "json_schema", "json_schema": {
        "name": "thing", "schema": schema, "strict": True, "description": "A thing."}}, verbosity="low")
    assert result["text"] == {"format": {"type": "json_schema", "name": "thing", "schema": schema, "strict": True,
                                         "description": "A thing."}, "verbosity": "low"}
    assert body(response_format={"type": "json_object"})["text"] == {"format": {"type": "json_object"}}


def test_web_search_options_become_a_web_search_tool():
    result = body(web_search_options={"search_context_size": "high", "user_location": {
        "type": "approximate", "approximate": {"country": "GB", "city": "London"}}})
    assert result["tools"] == [{"type": "web_search", "search_context_size": "high",
                                "user_location": {"type": "approximate", "country": "GB", "city": "London"}}]


def test_copied_parameters_and_store_default():
    result = body(user="u-1", metadata={"k": "v"}, service_tier="flex", prompt_cache_key="pc", safety_identifier="s")
    assert {key: result[key] for key in ("user", "metadata", "service_tier", "prompt_cache_key", "safety_identifier")} \
        == {"user": "u-1", "metadata": {"k": "v"}, "service_tier": "flex", "prompt_cache_key": "pc",
            "safety_identifier": "s"}
    assert result["store"] is False
    assert body(store=True)["store"] is True


def test_prompt_cache_options_and_moderation_are_carried_over():
    cache = {"ttl": "30m", "mode": "explicit"}
    moderation = {"model": "omni-moderation-latest", "policy": {"input": {"mode": "block"}, "output": None}}
    translation = translate(prompt_cache_options=cache, moderation=moderation)
    assert translation.upstream.body["prompt_cache_options"] == cache and translation.upstream.body["moderation"] == moderation
    assert translation.dropped == ()
    assert "moderation" not in body(moderation=None)
    # A null option is one not given; options newer than the proxy go on as they are.
    assert body(prompt_cache_options={"ttl": None, "mode": "implicit", "scope": "org"})["prompt_cache_options"] == {
        "mode": "implicit", "scope": "org"}


def test_cache_breakpoints_stay_on_their_parts():
    mark = {"prompt_cache_breakpoint": {"mode": "explicit"}}
    result = body(messages=[
        {"role": "system", "content": "Plain rules."},
        {"role": "system", "content": [{"type": "text", "text": "Long shared prefix.", **mark}]},
        {"role": "user", "content": [{"type": "text", "text": "Look:", **mark},
                                     {"type": "image_url", "image_url": {"url": "https://img.example/a.png"}, **mark},
                                     {"type": "file", "file": {"file_id": "file-1"}, **mark}]},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "a"},
                                                           {"type": "text", "text": "b", **mark}]},
    ])
    assert result["instructions"] == "Plain rules."
    # Instructions are one string: a system message marking a breakpoint goes first in the input instead.
    assert result["input"][0] == {"role": "developer", "content": [
        {"type": "input_text", "text": "Long shared prefix.", **mark}]}
    assert all(part["prompt_cache_breakpoint"] == {"mode": "explicit"} for part in result["input"][1]["content"])
    assert result["input"][3]["output"] == [{"type": "input_text", "text": "a"},
                                            {"type": "input_text", "text": "b", **mark}]


def test_stream_flags():
    translation = translate(stream=True, stream_options={"include_usage": True})
    assert translation.answer.stream and translation.answer.include_usage and translation.upstream.body["stream"] is True
    assert "stream_options" not in translation.upstream.body


def test_unsupported_and_unknown_parameters_are_dropped_and_listed():
    translation = translate(temperature=0.2, top_p=0.9, presence_penalty=0.1, frequency_penalty=0.1,
                            logit_bias={"1": 2}, seed=7, keep_alive="5m", num_ctx=4096, think=True,
                            enable_thinking=True, extra_body={"x": 1})
    assert set(translation.dropped) == {"temperature", "top_p", "presence_penalty", "frequency_penalty",
                                        "logit_bias", "seed", "keep_alive", "num_ctx", "think", "enable_thinking",
                                        "extra_body"}
    for key in translation.dropped:
        assert key not in translation.upstream.body


def test_stop_n_and_logprobs_are_emulated_or_mapped():
    translation = translate(stop=["END", "###"], n=3, logprobs=True, top_logprobs=5)
    assert translation.answer.stop == ("END", "###") and translation.answer.n == 3
    assert translation.upstream.body["include"] == ["message.output_text.logprobs"]
    assert translation.upstream.body["top_logprobs"] == 5
    assert "stop" not in translation.upstream.body and "n" not in translation.upstream.body
    assert translate(stop="END").answer.stop == ("END",)


@pytest.mark.parametrize("chat, param", [
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"stop": 5}, "stop"),
    ({"n": 5}, "n"),
    ({"n": 0}, "n"),
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"logprobs": True, "top_logprobs": 50}, "top_logprobs"),
    ({"modalities": ["text", "audio"]}, "modalities"),
    ({"audio": {"voice": "alloy", "format": "mp3"}}, "audio"),
])
def test_unservable_values_are_refused(chat, param):
    with pytest.raises(InvalidRequest) as error:
        translate(**chat)
    assert error.value.param == param


def test_harmless_defaults_pass():
    translation = translate(n=1, stop=[], logprobs=False, modalities=["text"])
    assert translation.answer.n == 1 and translation.answer.stop == () and "include" not in translation.upstream.body


def test_deep_research_gets_a_search_tool_unless_it_has_one():
    options = MappingOptions(require_search_tool=True)
    base = {"model": "o3-deep-research", "messages": [{"role": "user", "content": "x"}]}
    assert chat_to_responses(base, options).upstream.body["tools"] == [{"type": "web_search_preview"}]
    with_search = chat_to_responses({**base, "web_search_options": {}}, options).upstream.body["tools"]
    assert with_search == [{"type": "web_search"}]
    check_create_response(chat_to_responses(base, options).upstream.body)


def test_earlier_reasoning_is_put_back_in_front_of_its_answer():
    kept = [{"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA-secret"}]
    translation = chat_to_responses({"model": "o3-pro", "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
        {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nDone."},
        {"role": "user", "content": "y"},
    ]}, MappingOptions(keep_reasoning=True))
    text_key = "text:" + hashlib.sha256(b"Done.").hexdigest()  # think tags are not part of the key
    assert translation.provenance.answers == ((1, ("call_1",)), (3, (text_key,)))
    assert translation.upstream.body["include"] == ["reasoning.encrypted_content"]
    restored = restore_reasoning(translation, {"call_1": kept})
    assert len(translation.upstream.body["input"]) == 5  # a new translation: the first one is left as it was
    body = restored.upstream.body
    check_create_response(body)
    assert [item.get("type", "message") for item in body["input"]] == [
        "message", "reasoning", "function_call", "function_call_output", "message", "message"]
    assert body["input"][1] == kept[0]


def test_without_keep_reasoning_nothing_is_asked_or_tracked():
    translation = translate(messages=[{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"},
                                      {"role": "user", "content": "z"}])
    assert translation.provenance.answers == () and "include" not in translation.upstream.body


@pytest.mark.parametrize("chat, param", [
    ({"messages": "hi"}, "messages"),
    ({"messages": []}, "messages"),
    ({"messages": ["hi"]}, "messages[0]"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": [{"type": "video", "video": "x"}]}]}, "messages[0].content[0].type"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    ({"tools": {"name": "a"}}, "tools"),
    ({"tools": [{"type": "function"}]}, "tools[0].function"),
    ({"tools": [{"type": "function", "function": {"name": 3}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "retrieval"}]}, "tools[0].type"),
    ({"tool_choice": "sometimes"}, "tool_choice"),
    ({"response_format": {"type": "yaml"}}, "response_format"),
    ({"stream": "yes"}, "stream"),
    ({"stream_options": True}, "stream_options"),
    ({"stream": True, "stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
    ({"stream_options": {"include_usage": 1}}, "stream_options.include_usage"),
    ({"modalities": "text"}, "modalities"),
    ({"prompt_cache_options": "30m"}, "prompt_cache_options"),
    ({"prompt_cache_options": {"ttl": "1d"}}, "prompt_cache_options.ttl"),
    ({"prompt_cache_options": {"mode": ["explicit"]}}, "prompt_cache_options.mode"),
    ({"moderation": "on"}, "moderation"),
    ({"moderation": {"policy": None}}, "moderation.model"),
    ({"moderation": {"model": "omni-moderation-latest", "policy": "strict"}}, "moderation.policy"),
    ({"moderation": {"model": "omni-moderation-latest", "policy": {"input": "block"}}}, "moderation.policy.input"),
    ({"moderation": {"model": "omni-moderation-latest", "policy": {"output": {"mode": "flag"}}}},
     "moderation.policy.output.mode"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "x", "prompt_cache_breakpoint": True}]}]},
     "messages[0].content[0].prompt_cache_breakpoint"),
    ({"messages": [{"role": "system", "content": [{"type": "text", "text": "x",
                                                   "prompt_cache_breakpoint": {"mode": "implicit"}}]}]},
     "messages[0].content[0].prompt_cache_breakpoint"),
    ({"model": 42}, "model"),
])
def test_wrong_shapes_name_the_parameter(chat, param):
    base = {"model": "o3-pro", "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(InvalidRequest) as error:
        chat_to_responses({**base, **chat})
    assert error.value.status == 400
    assert error.value.param == param
    assert error.value.body()["error"]["type"] == "invalid_request_error"


USER_FILE = [{"role": "user", "content": [{"type": "input_file", "file_id": 7}]}]


@pytest.mark.parametrize("chat, param", [
    ({"metadata": []}, "metadata"),
    ({"metadata": {"k": 1}}, "metadata"),
    ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
    ({"metadata": {"k" * 65: "v"}}, "metadata"),
    ({"user": ["u"]}, "user"),
    ({"prompt_cache_key": 5}, "prompt_cache_key"),
    ({"safety_identifier": "s" * 65}, "safety_identifier"),
    ({"parallel_tool_calls": "yes"}, "parallel_tool_calls"),
    ({"service_tier": "turbo"}, "service_tier"),
    ({"service_tier": ["auto"]}, "service_tier"),
    ({"prompt_cache_retention": "forever"}, "prompt_cache_retention"),
    ({"reasoning": {"summary": []}}, "reasoning.summary"),
    ({"reasoning": {"summary": "verbose"}}, "reasoning.summary"),
    ({"messages": [{"role": "user", "content": [{"type": "input_image", "image_url": {"url": "x"}}]}]},
     "messages[0].content[0].image_url"),
    ({"messages": [{"role": "user", "content": [{"type": "input_image", "detail": "low"}]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "input_image", "file_id": "f", "detail": "max"}]}]},
     "messages[0].content[0].detail"),
    ({"messages": USER_FILE}, "messages[0].content[0].file_id"),
    ({"tools": [{"type": "custom", "custom": {"name": "c", "description": 1}}]}, "tools[0].custom.description"),
    ({"tools": [{"type": "custom", "custom": {"name": "c", "format": {"type": "grammar", "syntax": "ebnf"}}}]},
     "tools[0].custom.format"),
    ({"web_search_options": {"user_location": {"approximate": {"city": 5}}}},
     "web_search_options.user_location.approximate.city"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "n", "strict": "yes"}}},
     "response_format.json_schema.strict"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "n", "description": {}}}},
     "response_format.json_schema.description"),
])
def test_values_forwarded_as_given_are_checked_first(chat, param):
    """Found by the property tests: these were copied into the Responses request unchecked."""
    base = {"model": "o3-pro", "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(InvalidRequest) as error:
        chat_to_responses({**base, **chat})
    assert error.value.param == param


def test_responses_form_parts_and_custom_formats_are_rebuilt_from_checked_fields():
    result = body(messages=[{"role": "user", "content": [
        {"type": "input_image", "file_id": "file-img", "extra": {"x": 1}},
        {"type": "input_file", "file_url": "https://files.example/a.pdf", "filename": "a.pdf"},
    ]}], tools=[{"type": "custom", "custom": {"name": "sql", "format": {
        "type": "grammar", "syntax": "lark", "definition": "start: /.+/", "junk": 1}}}],
        service_tier="flex", metadata={"team": "a"}, reasoning={"summary": "concise"})
    assert result["input"][0]["content"] == [
        {"type": "input_image", "file_id": "file-img", "detail": "auto"},
        {"type": "input_file", "file_url": "https://files.example/a.pdf", "filename": "a.pdf"},
    ]
    assert result["tools"] == [{"type": "custom", "name": "sql",
                                "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}}]
    assert (result["service_tier"], result["metadata"], result["reasoning"]) == ("flex", {"team": "a"},
                                                                                 {"summary": "concise"})
