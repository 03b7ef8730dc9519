"""Chat answers -> Responses answers (proxy.translate.to_chat): the stream translator and the folded answer.

Every event and Response is validated against the spec; every stream obeys the sequence rules (numbers from
0 without gaps, each ``added`` closed by its ``done``, stable ids, one terminal event) and folds, event by
event, into the output its terminal event carries; a non-streamed answer equals the stream folded.
"""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import realdata
from chunks import fold
from proxy.errors import ProxyError
from proxy.translate import ChatOptions, ResponseStream, completion_to_response, responses_request_to_chat
from spec_check import check_chat_request, check_response, check_stream_event
from strategies import json_values, mutated

TOOLS = [
    {"type": "function", "name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
    {"type": "custom", "name": "apply_patch", "format": {"type": "grammar", "syntax": "lark", "definition": "start: x"}},
    {"type": "namespace", "name": "agents", "description": "Sub-agents.", "tools": [
        {"type": "function", "name": "spawn", "parameters": {"type": "object", "properties": {}}}]},
]
TERMINAL = ("response.completed", "response.incomplete", "response.failed")
NOW = 1_800_000_000


def state_for(request=None, options=None):
    return responses_request_to_chat({"model": "deepseek-reasoner", "input": "hi", "tools": TOOLS, **(request or {})},
                             options).state


def run(chunks, state=None, end=True):
    stream = ResponseStream(state or state_for(), response_id="resp_test", now=lambda: NOW)
    events = stream.start()
    for chunk in chunks:
        events += stream.feed(copy.deepcopy(chunk))
    if end:
        events += stream.finish()
    check_events(events)
    return stream, events


def chunk(delta=None, finish=None, **fields):
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": NOW, "model": "deepseek-reasoner",
            "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}], **fields}


USAGE = {"prompt_tokens": 20, "completion_tokens": 12, "total_tokens": 32,
         "prompt_tokens_details": {"cached_tokens": 8}, "completion_tokens_details": {"reasoning_tokens": 5}}


def fold_events(events):
    """The output items the events build, delta by delta (the done items checked against them on the way)."""
    items = {}
    for event in events:
        kind, index = event["type"], event.get("output_index")
        item = items.get(index)
        if kind == "response.output_item.added":
            assert index not in items and index == len(items), "output indices in order, without gaps"
            items[index] = copy.deepcopy(event["item"])
        elif kind == "response.content_part.added":
            assert event["content_index"] == len(item["content"])
            item["content"].append(copy.deepcopy(event["part"]))
        elif kind == "response.output_text.delta":
            item["content"][event["content_index"]]["text"] += event["delta"]
        elif kind == "response.output_text.annotation.added":
            annotations = item["content"][event["content_index"]]["annotations"]
            assert event["annotation_index"] == len(annotations)
            annotations.append(event["annotation"])
        elif kind == "response.refusal.delta":
            item["content"][event["content_index"]]["refusal"] += event["delta"]
        elif kind == "response.reasoning_summary_part.added":
            assert event["summary_index"] == len(item["summary"])
            item["summary"].append(copy.deepcopy(event["part"]))
        elif kind == "response.reasoning_summary_text.delta":
            item["summary"][event["summary_index"]]["text"] += event["delta"]
        elif kind == "response.function_call_arguments.delta":
            item["arguments"] += event["delta"]
        elif kind == "response.custom_tool_call_input.delta":
            item["input"] += event["delta"]
        elif kind == "response.output_item.done":
            if "status" in event["item"]:
                item["status"] = event["item"]["status"]
            assert item == event["item"], "the done item is what its events built"
    return [items[index] for index in sorted(items)]


_PAIRS = {  # added -> done, and what the done event says about what its deltas built
    "response.output_item.added": "response.output_item.done",
    "response.content_part.added": "response.content_part.done",
    "response.reasoning_summary_part.added": "response.reasoning_summary_part.done",
}


def check_events(events):
    """The sequence rules, and every event and Response valid against the spec."""
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    assert [event["type"] for event in events[:2]] == ["response.created", "response.in_progress"]
    terminals = [event for event in events if event["type"] in TERMINAL]
    assert len(terminals) <= 1 and (not terminals or terminals[0] is events[-1])
    ids = {}
    open_keys = set()
    texts = {}
    for event in events:
        check_stream_event(event)
        json.dumps(event)
        if "response" in event:
            check_response(event["response"])
            assert event["response"]["id"] == events[0]["response"]["id"]
        if "item" in event:
            assert ids.setdefault(event["output_index"], event["item"]["id"]) == event["item"]["id"]
        elif "item_id" in event:
            assert ids[event["output_index"]] == event["item_id"], "stable item ids"
        where = (event.get("output_index"), event.get("content_index", event.get("summary_index")))
        kind = event["type"]
        if kind in _PAIRS:
            key = (kind, event.get("output_index"), event.get("content_index"), event.get("summary_index"))
            assert key not in open_keys
            open_keys.add(key)
        for added, done in _PAIRS.items():
            if kind == done:
                key = (added, event.get("output_index"), event.get("content_index"), event.get("summary_index"))
                assert key in open_keys, f"{kind} without its added"
                open_keys.remove(key)
                if added == "response.output_item.added":
                    assert not any(other[1] == event["output_index"] for other in open_keys), "parts closed first"
        if kind.endswith(".delta"):
            texts[(kind.rsplit(".", 1)[0], *where)] = texts.get((kind.rsplit(".", 1)[0], *where), "") + event["delta"]
        elif kind.endswith(".done") and kind not in _PAIRS.values():
            value = next(event[key] for key in ("text", "arguments", "input", "refusal") if key in event)
            assert texts.get((kind.rsplit(".", 1)[0], *where), "") == value, f"{kind} holds its deltas"
    if terminals:
        assert not open_keys, f"left open: {open_keys}"
        assert fold_events(events) == terminals[0]["response"]["output"], "the stream folds into its final output"


def completion_of(chunks):
    """The chat.completion the chunks fold into, as a non-streaming upstream would answer (the first choice)."""
    folded = fold([{**chunk, "choices": [choice for choice in chunk.get("choices") or () if choice.get("index") == 0]}
                   for chunk in chunks])
    message = {"role": "assistant", **folded["message"]}
    message["content"] = message["content"] or None
    tiers = [chunk["service_tier"] for chunk in chunks if isinstance(chunk, dict) and chunk.get("service_tier")]
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": NOW, "model": "deepseek-reasoner",
            "choices": [{"index": 0, "message": message, "finish_reason": (folded["finish_reasons"] or [None])[-1]}],
            **({"usage": folded["usage"]} if folded["usage"] else {}), **({"service_tier": tiers[-1]} if tiers else {})}


# --- the answer, item by item -----------------------------------------------------


def test_text_answer_event_by_event():
    stream, events = run([chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}),
                          chunk({"content": "lo"}), chunk(finish="stop"), chunk(usage=USAGE) | {"choices": []}])
    assert [event["type"] for event in events] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.completed"]
    response = stream.response
    assert response["id"] == "resp_test" and response["object"] == "response" and response["status"] == "completed"
    assert response["created_at"] == NOW and response["completed_at"] == NOW
    message = response["output"][0]
    assert message["id"].startswith("msg_") and message["status"] == "completed" and message["role"] == "assistant"
    assert message["content"] == [{"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []}]
    assert response["usage"] == {"input_tokens": 20, "input_tokens_details": {"cached_tokens": 8, "cache_write_tokens": 0},
                                 "output_tokens": 12, "output_tokens_details": {"reasoning_tokens": 5},
                                 "total_tokens": 32}


def test_reasoning_comes_first_as_a_summary():
    stream, events = run([chunk({"reasoning_content": "Let me "}), chunk({"reasoning_content": "think."}),
                          chunk({"content": "Done."}), chunk(finish="stop")])
    kinds = [event["type"] for event in events]
    assert kinds[2:8] == ["response.output_item.added", "response.reasoning_summary_part.added",
                          "response.reasoning_summary_text.delta", "response.reasoning_summary_text.delta",
                          "response.reasoning_summary_text.done", "response.reasoning_summary_part.done"]
    reasoning, message = stream.response["output"]
    assert reasoning["type"] == "reasoning" and reasoning["id"].startswith("rs_")
    assert reasoning["summary"] == [{"type": "summary_text", "text": "Let me think."}]
    assert message["content"][0]["text"] == "Done."


def test_reasoning_in_the_reasoning_field_is_read_too():
    stream, _ = run([chunk({"reasoning": "hmm"}), chunk({"content": "ok"}, "stop")])
    assert stream.response["output"][0]["summary"][0]["text"] == "hmm"


def test_reasoning_can_be_left_out():
    stream, _ = run([chunk({"reasoning_content": "hmm"}), chunk({"content": "ok"}, "stop")],
                    state_for(options=ChatOptions(reasoning_source="none")))
    assert [item["type"] for item in stream.response["output"]] == ["message"]


@pytest.mark.parametrize("pieces", [
    ["<think>\nStep 1.\n</think>\n\nAnswer."],
    ["  <thi", "nk>Step", " 1.</th", "ink>", "\n\n", "Answer."],
    ["<", "t", "h", "i", "n", "k", ">", "S", "tep 1.<", "/", "think", ">", "Answer", "."],
])
def test_think_blocks_in_the_content_are_reasoning_when_configured(pieces):
    state = state_for(options=ChatOptions(reasoning_source="think"))
    stream, _ = run([chunk({"content": piece}) for piece in pieces] + [chunk(finish="stop")], state)
    reasoning, message = stream.response["output"]
    assert reasoning["summary"][0]["text"].strip() == "Step 1."
    assert message["content"][0]["text"] == "Answer."
    plain, _ = run([chunk({"content": piece}) for piece in pieces] + [chunk(finish="stop")])
    assert [item["type"] for item in plain.response["output"]] == ["message"]  # only when configured


def test_content_that_only_looks_like_a_think_tag_stays_text():
    state = state_for(options=ChatOptions(reasoning_source="think"))
    stream, _ = run([chunk({"content": " <thi"}), chunk({"content": "s is text"}), chunk(finish="stop")], state)
    assert stream.response["output"][0]["content"][0]["text"] == " <this is text"


def test_refusal_is_a_refusal_part():
    stream, events = run([chunk({"refusal": "I can't "}), chunk({"refusal": "help."}), chunk(finish="stop")])
    assert stream.response["output"][0]["content"] == [{"type": "refusal", "refusal": "I can't help."}]
    assert "response.refusal.done" in [event["type"] for event in events]


def test_url_citations_become_annotations():
    citation = {"type": "url_citation", "url_citation": {"start_index": 0, "end_index": 5, "url": "https://a.example",
                                                         "title": "A"}}
    stream, events = run([chunk({"content": "Paris is nice."}), chunk({"annotations": [citation]}), chunk(finish="stop")])
    assert stream.response["output"][0]["content"][0]["annotations"] == [
        {"type": "url_citation", "start_index": 0, "end_index": 5, "url": "https://a.example", "title": "A"}]
    assert "response.output_text.annotation.added" in [event["type"] for event in events]


def call_piece(index, call_id=None, name=None, arguments=None):
    function = {key: value for key, value in (("name", name), ("arguments", arguments)) if value is not None}
    piece = {"index": index, "function": function}
    if call_id:
        piece.update(id=call_id, type="function")
    return chunk({"tool_calls": [piece]})


def test_interleaved_function_calls_keep_their_ids_names_and_arguments():
    stream, events = run([
        chunk({"content": "Checking both."}),
        call_piece(0, "call_a", "weather", ""), call_piece(0, arguments='{"ci'),
        call_piece(1, "call_b", "agents__spawn", '{'), call_piece(0, arguments='ty": "Paris"}'),
        call_piece(1, arguments='}'), chunk(finish="tool_calls"), chunk(usage=USAGE) | {"choices": []},
    ])
    message, first, second = stream.response["output"]
    assert message["content"][0]["text"] == "Checking both."
    assert first == {"id": first["id"], "type": "function_call", "status": "completed", "call_id": "call_a",
                     "name": "weather", "arguments": '{"city": "Paris"}'}
    assert second["call_id"] == "call_b" and second["namespace"] == "agents" and second["name"] == "spawn"
    assert first["id"].startswith("fc_") and first["id"] != second["id"]
    dones = [event for event in events if event["type"] == "response.function_call_arguments.done"]
    assert [(event["name"], event["arguments"]) for event in dones] == [("weather", '{"city": "Paris"}'),
                                                                        ("spawn", "{}")]
    assert stream.response["status"] == "completed"


def test_a_custom_tool_call_streams_its_input_decoded():
    raw = json.dumps({"input": "*** Begin Patch\n+ \"quoted\" \\ é 😀\n*** End Patch"})
    pieces = [raw[i:i + 3] for i in range(0, len(raw), 3)]
    stream, events = run([call_piece(0, "call_p", "apply_patch", "")]
                         + [call_piece(0, arguments=piece) for piece in pieces] + [chunk(finish="tool_calls")])
    item = stream.response["output"][0]
    assert item == {"id": item["id"], "type": "custom_tool_call", "call_id": "call_p", "name": "apply_patch",
                    "input": "*** Begin Patch\n+ \"quoted\" \\ é 😀\n*** End Patch"}
    assert item["id"].startswith("ctc_")
    deltas = [event["delta"] for event in events if event["type"] == "response.custom_tool_call_input.delta"]
    assert len(deltas) > 5 and "".join(deltas) == item["input"]


def test_a_custom_tool_answered_without_json_takes_the_text_as_its_input():
    stream, events = run([call_piece(0, "call_p", "apply_patch", "*** Begin Patch"), chunk(finish="tool_calls")])
    assert stream.response["output"][0]["input"] == "*** Begin Patch"


def test_a_call_without_an_id_gets_one():
    stream, _ = run([call_piece(0, None, "weather", "{}"), chunk(finish="tool_calls")])
    assert stream.response["output"][0]["call_id"].startswith("call_")


@pytest.mark.parametrize("finish, reason", [("length", "max_output_tokens"), ("content_filter", "content_filter")])
def test_length_and_content_filter_end_as_incomplete(finish, reason):
    stream, events = run([chunk({"content": "Once upon"}), chunk(finish=finish), chunk(usage=USAGE) | {"choices": []}])
    assert events[-1]["type"] == "response.incomplete"
    assert stream.response["status"] == "incomplete" and stream.response["incomplete_details"] == {"reason": reason}
    assert stream.response["output"][0]["status"] == "incomplete" and stream.response["completed_at"] is None
    assert stream.response["usage"]["total_tokens"] == 32


def test_an_error_chunk_mid_stream_fails_the_response_and_closes_what_was_open():
    stream, events = run([chunk({"content": "Part"}), {"error": {"message": "upstream overloaded",
                                                                  "code": "rate_limit_exceeded"}},
                          chunk({"content": "ignored"}, "stop")])
    assert [event["type"] for event in events[-2:]] == ["error", "response.failed"]
    assert (events[-2]["code"], events[-2]["error"]["message"]) == ("rate_limit_exceeded", "upstream overloaded")
    assert stream.response["error"] == {"code": "rate_limit_exceeded", "message": "upstream overloaded"}
    assert stream.response["output"][0]["status"] == "incomplete"
    assert not any(event["type"] == "response.completed" for event in events)


def test_a_finish_reason_of_error_fails_the_response():
    stream, events = run([chunk({"content": "Part"}), {**chunk(finish="error"), "choices": [
        {"index": 0, "delta": {}, "finish_reason": "error", "error": {"message": "Provider returned error"}}]}])
    assert events[-1]["type"] == "response.failed"
    assert stream.response["error"] == {"code": "server_error", "message": "Provider returned error"}


def test_the_core_does_no_io():
    """Plain functions and state machines: nothing that reads, writes, waits or serves."""
    import ast
    import pathlib

    import proxy.translate as package
    for path in pathlib.Path(package.__file__).parent.rglob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
        assert not imported & {"asyncio", "aiohttp", "starlette", "fastapi", "httpx", "socket", "os", "io",
                               "logging"}, path.name


def test_a_stream_that_ends_without_a_finish_reason_fails():
    stream, events = run([chunk({"content": "Part"}), call_piece(0, "call_a", "weather", '{"c')])
    assert events[-1]["type"] == "response.failed" and stream.response["error"]["code"] == "server_error"
    assert [item["status"] for item in stream.response["output"]] == ["completed", "incomplete"]  # the call was cut


def test_a_failure_from_the_caller_ends_the_stream_once():
    stream = ResponseStream(state_for(), response_id="resp_test")
    events = stream.start() + stream.feed(chunk({"content": "x"})) + stream.fail("Upstream timed out.")
    events += stream.feed(chunk({"content": "late"})) + stream.finish() + stream.fail("again")
    check_events(events)
    assert events[-1]["type"] == "response.failed"
    assert stream.response["error"] == {"code": "server_error", "message": "Upstream timed out."}


def test_the_request_settings_are_echoed_as_the_api_echoes_them():
    state = state_for({"instructions": "Be brief.", "temperature": 0.3, "top_p": 0.8, "max_output_tokens": 500,
                       "tool_choice": "required", "parallel_tool_calls": False, "metadata": {"k": "v"},
                       "store": False, "reasoning": {"effort": "low", "summary": "auto"}, "user": "u",
                       "text": {"format": {"type": "json_object"}, "verbosity": "low"}, "service_tier": "flex",
                       "tools": TOOLS + [{"type": "web_search"}]})
    response = completion_to_response({"choices": [{"index": 0, "message": {"role": "assistant", "content": "{}"},
                                              "finish_reason": "stop"}]}, state)
    check_response(response)
    assert {key: response[key] for key in ("model", "instructions", "temperature", "top_p", "max_output_tokens",
                                           "tool_choice", "parallel_tool_calls", "metadata", "store", "reasoning",
                                           "user", "text", "service_tier")} == {
        "model": "deepseek-reasoner", "instructions": "Be brief.", "temperature": 0.3, "top_p": 0.8,
        "max_output_tokens": 500, "tool_choice": "required", "parallel_tool_calls": False, "metadata": {"k": "v"},
        "store": False, "reasoning": {"effort": "low", "summary": "auto"}, "user": "u",
        "text": {"format": {"type": "json_object"}, "verbosity": "low"}, "service_tier": "flex"}
    assert [tool["type"] for tool in response["tools"]] == ["function", "custom", "namespace"]
    assert response["tools"][0]["strict"] is True
    defaults = completion_to_response({"choices": [{"message": {"content": "x"}}]}, state_for({"tools": None}))
    assert {key: defaults[key] for key in ("instructions", "temperature", "top_p", "tool_choice", "tools", "store",
                                           "parallel_tool_calls", "text", "metadata", "truncation")} == {
        "instructions": None, "temperature": 1.0, "top_p": 1.0, "tool_choice": "auto", "tools": [], "store": True,
        "parallel_tool_calls": True, "text": {"format": {"type": "text"}, "verbosity": "medium"}, "metadata": {},
        "truncation": "disabled"}


# Top-level fields of recorded OpenAI Responses that a chat upstream's answer cannot fill: `user` is left out when
# not given (the API sends null, its own spec types it as a string), `billing`, `moderation` and `tool_usage` have
# no chat counterpart.
NOT_ECHOED = {"user", "billing", "moderation", "tool_usage", "frequency_penalty", "presence_penalty"}


def test_a_response_has_every_field_openai_sends():
    recorded = set().union(*(recording.body for recording in realdata.recordings(api="responses", kind="body")))
    response = completion_to_response({"choices": [{"message": {"content": "x"}, "finish_reason": "stop"}],
                                 "usage": USAGE}, state_for())
    assert recorded - set(response) == NOT_ECHOED


def test_deepseek_reports_cached_input_its_own_way():
    response = completion_to_response({"choices": [{"message": {"content": "x"}, "finish_reason": "stop"}],
                                 "usage": {"prompt_tokens": 100, "completion_tokens": 3, "total_tokens": 103,
                                           "prompt_cache_hit_tokens": 64, "prompt_cache_miss_tokens": 36}},
                                state_for())
    assert response["usage"]["input_tokens_details"]["cached_tokens"] == 64


def test_the_non_streamed_answer_maps_every_item():
    completion = {"id": "chatcmpl-1", "object": "chat.completion", "created": NOW, "model": "deepseek-reasoner",
                  "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                      "role": "assistant", "content": "Let me edit.", "reasoning_content": "Patch it.",
                      "tool_calls": [
                          {"id": "call_1", "type": "function", "function": {"name": "apply_patch",
                                                                            "arguments": '{"input": "*** x"}'}},
                          {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]}}],
                  "usage": USAGE}
    response = completion_to_response(completion, state_for(), response_id="resp_test", now=lambda: NOW)
    check_response(response)
    assert [item["type"] for item in response["output"]] == ["reasoning", "message", "custom_tool_call",
                                                              "function_call"]
    assert response["output"][2]["input"] == "*** x" and response["output"][2]["call_id"] == "call_1"
    streamed, _ = run([chunk({"reasoning_content": "Patch it."}), chunk({"content": "Let me edit."}),
                       call_piece(0, "call_1", "apply_patch", '{"input": "*** x"}'),
                       call_piece(1, "call_2", "weather", "{}"), chunk(finish="tool_calls"),
                       chunk(usage=USAGE) | {"choices": []}])
    assert streamed.response == response


@pytest.mark.parametrize("completion", [{"error": {"message": "bad key"}}, {"choices": []}, {"object": "x"}, [1]])
def test_a_non_streamed_answer_that_is_no_answer_is_an_error(completion):
    with pytest.raises(ProxyError) as caught:
        completion_to_response(completion, state_for())
    assert caught.value.status == 502 and caught.value.message


# --- recorded chat traffic ---------------------------------------------------------

CHAT_STREAMS = realdata.recordings(api="chat", kind="stream")
CHAT_BODIES = realdata.recordings(api="chat", kind="body")


@pytest.mark.parametrize("recording", CHAT_STREAMS, ids=[recording.name for recording in CHAT_STREAMS])
def test_recorded_chat_streams_become_valid_responses_streams_that_fold_into_the_non_streamed_answer(recording):
    state = state_for({"tools": _recorded_tools(recording)})
    stream, events = run(recording.events, state)
    assert events[-1]["type"] in ("response.completed", "response.incomplete")
    assert stream.response == completion_to_response(completion_of(recording.events), state, response_id="resp_test",
                                               now=lambda: NOW)


@pytest.mark.parametrize("recording", CHAT_BODIES, ids=[recording.name for recording in CHAT_BODIES])
def test_recorded_chat_completions_become_valid_responses(recording):
    response = completion_to_response(recording.body, state_for({"tools": _recorded_tools(recording)}))
    check_response(response)
    message = recording.body["choices"][0]["message"]
    texts = [part.get("text") or part.get("refusal") for item in response["output"] if item["type"] == "message"
             for part in item["content"]]
    assert "".join(texts) == (message.get("content") or "") + (message.get("refusal") or "")
    calls = [item["call_id"] for item in response["output"] if item["type"] == "function_call"]
    assert calls == [call["id"] for call in message.get("tool_calls") or ()]


def _recorded_tools(recording):
    """The recorded request's function tools in the Responses form (a recording may store no request)."""
    tools = (recording.request or {}).get("tools") or []
    return [{"type": "function", "name": tool["function"]["name"],
             "parameters": tool["function"].get("parameters") or {"type": "object", "properties": {}}}
            for tool in tools if tool.get("type") == "function"]


def test_recorded_pairs_stream_the_events_openai_sent_for_the_same_conversation():
    """Conversations asked of both APIs (a refusal, a cut answer, parallel tool calls): the translated chat
    stream has the shape of the Responses stream OpenAI sent."""
    pairs = [(responses, chat) for responses, chat in realdata.paired_conversations() if responses.kind == "stream"]
    assert len(pairs) >= 8
    for responses, chat in pairs:
        _, events = run(chat.events, state_for({"tools": _recorded_tools(chat)}))
        assert _shape(events) == _shape(responses.events), responses.name


def _shape(events):
    """Event types with runs of deltas collapsed."""
    kinds = []
    for event in events:
        if not (kinds and kinds[-1] == event["type"] and event["type"].endswith(".delta")):
            kinds.append(event["type"])
    return kinds


# --- properties ------------------------------------------------------------------------


def _pieces(draw, text):
    """``text`` cut at random places."""
    cuts = sorted(draw(st.sets(st.integers(min_value=1, max_value=max(len(text) - 1, 1)), max_size=6)))
    return [text[start:end] for start, end in zip([0, *cuts], [*cuts, len(text)]) if text[start:end]]


@st.composite
def chat_streams(draw):
    """Chunk sequences as chat upstreams send them: reasoning, text, refusal, then tool calls (their pieces
    interleaved), a finish reason and maybe a usage chunk, each cut into pieces at random."""
    think = draw(st.booleans())
    reasoning = draw(st.text(max_size=30))
    content = draw(st.text(max_size=40))
    if think and draw(st.booleans()):
        content = f"<think>{reasoning}</think>\n{content}"
        reasoning = ""
    refusal = draw(st.sampled_from(["", "", "I can't."]))
    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"reasoning_content": piece}) for piece in _pieces(draw, reasoning)]
    chunks += [chunk({"content": piece}) for piece in _pieces(draw, content)]
    chunks += [chunk({"refusal": piece}) for piece in _pieces(draw, refusal)]
    calls = []
    for index in range(draw(st.integers(min_value=0, max_value=3))):
        name = draw(st.sampled_from(["weather", "apply_patch", "agents__spawn", "unknown_tool"]))
        value = draw(st.text(max_size=20))
        arguments = json.dumps({"input" if name == "apply_patch" else "q": value}, ensure_ascii=draw(st.booleans()))
        first = call_piece(index, f"call_{index}", name, "")
        calls.append([first] + [call_piece(index, arguments=piece) for piece in _pieces(draw, arguments)])
    begun = 0  # calls start in index order, then their pieces interleave
    while any(calls):
        index = draw(st.sampled_from([index for index in range(min(begun + 1, len(calls))) if calls[index]]))
        chunks.append(calls[index].pop(0))
        begun = max(begun, index + 1)
    finish = draw(st.sampled_from(["stop", "length", "tool_calls", "content_filter"]))
    if draw(st.booleans()):
        chunks.append(chunk(finish=finish))
    else:
        chunks[-1]["choices"][0]["finish_reason"] = finish
    if draw(st.booleans()):
        chunks.append(chunk(usage=USAGE) | {"choices": []})
    return chunks, ("think" if think else "fields")


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(stream=chat_streams())
def test_the_folded_stream_equals_the_non_streamed_answer(stream):
    chunks, source = stream
    state = state_for(options=ChatOptions(reasoning_source=source))
    streamed, events = run(chunks, state)
    assert events[-1]["type"] in ("response.completed", "response.incomplete")
    assert streamed.response == completion_to_response(completion_of(chunks), state, response_id="resp_test",
                                                 now=lambda: NOW)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(stream=chat_streams())
def test_a_delta_of_one_piece_gives_the_events_of_the_general_path(stream):
    """A delta holding only ``content`` or only ``reasoning_content`` takes a shorter path than other chunks; the
    same stream with the role beside each delta (which the events do not show) takes the general one: the events
    are the same."""
    chunks, source = stream
    padded = copy.deepcopy(chunks)
    for piece in padded:
        for choice in piece["choices"]:
            choice["delta"].setdefault("role", "assistant")
    state = state_for(options=ChatOptions(reasoning_source=source))
    assert run(chunks, state)[1] == run(padded, state)[1]


mangled_chunks = st.lists(st.one_of(
    json_values,
    mutated(st.builds(lambda delta: chunk(delta), st.fixed_dictionaries({}, optional={
        "content": st.text(max_size=8), "reasoning_content": st.text(max_size=8), "refusal": st.text(max_size=4),
        "tool_calls": st.lists(st.fixed_dictionaries({"index": st.integers(0, 2)}, optional={
            "id": st.text(max_size=4), "function": st.fixed_dictionaries({}, optional={
                "name": st.sampled_from(["weather", "apply_patch", "x"]), "arguments": st.text(max_size=6)})}),
            max_size=2),
        "annotations": st.lists(json_values, max_size=1)}))),
    st.builds(lambda reason: chunk(finish=reason), st.sampled_from(["stop", "length", "tool_calls", "content_filter"])),
    st.just({"error": {"message": "boom"}}),
), max_size=12)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(chunks=mangled_chunks, source=st.sampled_from(["fields", "think", "none"]), end=st.booleans())
def test_any_chunk_sequence_gives_valid_events_and_one_ending(chunks, source, end):
    stream, events = run(chunks, state_for(options=ChatOptions(reasoning_source=source)), end=end)
    if end:
        assert stream.done and events[-1]["type"] in TERMINAL
        assert (events[-1]["type"] == "response.failed") == (stream.response["status"] == "failed")


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(stream=chat_streams())
def test_an_answer_replayed_as_the_next_input_gives_the_upstream_its_own_turn_back(stream):
    """Clients without stored state (Codex with store: false) send the output items back as input: the chat
    history then holds the upstream's own turn, its calls under the names and ids it used."""
    chunks, source = stream
    options = ChatOptions(reasoning_history=True, reasoning_source=source)
    streamed, _ = run(chunks, state_for(options=options))
    output = streamed.response["output"]
    outputs = [{"type": "function_call_output" if item["type"] == "function_call" else "custom_tool_call_output",
                "call_id": item["call_id"], "output": "ok"} for item in output if "call_id" in item]
    replay = responses_request_to_chat({"model": "deepseek-reasoner", "tools": TOOLS,
                                "input": [{"role": "user", "content": "hi"}, *output, *outputs]}, options)
    check_chat_request(replay.body)
    turn = [message for message in replay.body["messages"] if message["role"] == "assistant"]
    assert len(turn) <= 1
    sent = completion_of(chunks)["choices"][0]["message"].get("tool_calls", [])
    calls = turn[0].get("tool_calls", []) if turn else []
    assert [(call["id"], call["function"]["name"]) for call in calls] == [
        (call["id"], call["function"]["name"]) for call in sent]
    for call, original in zip(calls, sent):
        if original["function"]["name"] == "apply_patch":  # the input, decoded and encoded again
            assert json.loads(call["function"]["arguments"]) == json.loads(original["function"]["arguments"])
        else:
            assert call["function"]["arguments"] == original["function"]["arguments"]
    texts = [part["text"] for item in output if item["type"] == "message" for part in item["content"]
             if part["type"] == "output_text"]
    assert (turn[0]["content"] if turn else None) == ("".join(texts) if texts else None)
    reasoning = [item["summary"][0]["text"] for item in output if item["type"] == "reasoning"]
    if turn:
        assert turn[0].get("reasoning_content") == ("\n\n".join(reasoning) if reasoning else None)
