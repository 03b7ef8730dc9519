"""The stream translator, driven directly with every recorded real Responses stream."""

from __future__ import annotations

import copy

import pytest

import realdata
from chunks import comparable, fold
from proxy.translate import StreamTranslator, responses_to_chat
from spec_check import check_chat_chunk, check_error_body

pytestmark = pytest.mark.core  # the pure translation core: `pytest -m core` runs these alone

STREAMS = realdata.recordings(api="responses", kind="stream")


def run(events, include_usage=True, model="o3-pro"):
    translator = StreamTranslator(model, include_usage=include_usage)
    frames = translator.start()
    for event in events:
        frames += translator.feed(copy.deepcopy(event))
    frames += translator.finish()
    return translator, frames


def check_frames(frames):
    """Rules every stream obeys, whatever it carried."""
    choice_chunks = [frame for frame in frames if frame.get("choices")]
    for frame in frames:
        if "error" in frame:
            check_error_body(frame)
            assert isinstance(frame["error"]["message"], str) and frame["error"]["message"]
            continue
        check_chat_chunk(frame)
        assert "type" not in frame
        assert frame["object"] == "chat.completion.chunk"
        assert frame["id"] == frames[0]["id"] and frame["created"] == frames[0]["created"]
        for choice in frame["choices"]:
            delta = choice["delta"]
            assert not ({"content", "reasoning_content"} <= delta.keys()), "reasoning and content share a chunk"
            for call in delta.get("tool_calls", []):
                assert isinstance(call["index"], int)
    assert choice_chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    finishes = [frame for frame in choice_chunks if frame["choices"][0]["finish_reason"]]
    errors = [frame for frame in frames if "error" in frame]
    assert len(finishes) + len(errors) == 1, "exactly one finish or one error"
    if finishes:
        assert finishes[0] is choice_chunks[-1]
    else:
        assert errors[0] is frames[-1]


@pytest.mark.parametrize("recording", STREAMS, ids=[r.name for r in STREAMS])
def test_recorded_stream_translates_like_its_final_response(recording):
    translator, frames = run(recording.events)
    check_frames(frames)
    terminal = recording.events[-1]
    if terminal["type"] == "response.failed":
        assert translator.error is not None and "error" in frames[-1]
        return
    final = terminal["response"]
    folded = fold(frames)
    expected = responses_to_chat(final)
    assert folded["message"] == comparable(expected["choices"][0]["message"])
    assert folded["finish_reasons"] == [expected["choices"][0]["finish_reason"]]
    assert folded["usage"] == expected["usage"]
    assert frames[-1]["choices"] == [] and frames[-1]["usage"] == expected["usage"]


def names(fragment):
    return [r for r in STREAMS if fragment in r.name]


def test_reasoning_summary_parts_are_separated_by_a_blank_line():
    (recording,) = names("output__test_call_with_thinking__openai_gpt_5_responses__stream#1")
    _, frames = run(recording.events)
    reasoning = fold(frames)["message"]["reasoning_content"]
    parts = [part["text"] for item in recording.events[-1]["response"]["output"] if item["type"] == "reasoning"
             for part in item["summary"]]
    assert len(parts) >= 2 and reasoning == "\n\n".join(parts)


def test_parallel_function_calls_are_indexed_from_zero_with_call_ids():
    recording = names("output__test_call_with_tools__openai_gpt_4o_responses__stream#1")[0]
    _, frames = run(recording.events)
    calls = fold(frames)["message"]["tool_calls"]
    items = [item for item in recording.events[-1]["response"]["output"] if item["type"] == "function_call"]
    assert len(calls) == 2
    assert [call["id"] for call in calls] == [item["call_id"] for item in items]
    headers = [c["choices"][0]["delta"]["tool_calls"][0] for c in frames
               if c.get("choices") and "id" in c["choices"][0]["delta"].get("tool_calls", [{}])[0]]
    assert [h["index"] for h in headers] == [0, 1]
    assert all(h["function"]["arguments"] == "" and h["type"] == "function" for h in headers)


def test_web_search_citations_arrive_as_nested_annotations():
    recording = names("ai/openai-web-search-tool.1.chunks#1")[0]
    _, frames = run(recording.events)
    annotations = fold(frames)["message"]["annotations"]
    assert len(annotations) == 12
    assert all(a["type"] == "url_citation" and a["url_citation"]["url"].startswith("http") for a in annotations)


def test_refusal_stream():
    recording = names("output__test_refusal__openai_gpt_4o_responses__stream#1")[0]
    _, frames = run(recording.events)
    assert fold(frames)["message"]["refusal"]
    assert any("refusal" in f["choices"][0]["delta"] for f in frames if f.get("choices"))


def test_incomplete_stream_finishes_with_length():
    recording = names("output__test_max_tokens__openai_gpt_4o_responses__stream#1")[0]
    _, frames = run(recording.events)
    assert fold(frames)["finish_reasons"] == ["length"]
    assert fold(frames)["message"]["content"]


def test_failed_stream_ends_with_the_upstream_error_and_no_finish():
    recording = names("ai/openai-error.1.chunks#1")[0]
    translator, frames = run(recording.events)
    assert frames[-1]["error"]["code"] == "insufficient_quota"
    assert "quota" in frames[-1]["error"]["message"]
    assert translator.error.status == 429
    assert not fold(frames)["finish_reasons"]


def test_without_include_usage_no_usage_chunk():
    recording = names("openai-dotnet/ResponsesTests_StreamingResponses#1")[0]
    _, frames = run(recording.events, include_usage=False)
    assert all(frame.get("choices") for frame in frames)
    assert all("usage" not in frame for frame in frames)


def test_moderation_chunk_comes_last_and_only_for_the_first_choice():
    recording = names("openai-dotnet/ResponsesTests_StreamingResponses#1")[0]
    events = copy.deepcopy(recording.events)
    result = {"type": "moderation_result", "model": "omni-moderation-latest", "flagged": False, "categories": {},
              "category_scores": {}, "category_applied_input_types": {}}
    events[-1]["response"]["moderation"] = {"input": result, "output": result}
    _, frames = run(events)
    check_frames(frames)
    assert "usage" in frames[-2]
    assert frames[-1]["choices"] == [] and frames[-1]["moderation"]["output"] == {
        "type": "moderation_results", "model": "omni-moderation-latest", "results": [result]}
    second = StreamTranslator("o3-pro", choice_index=1)
    assert not any("moderation" in frame for event in events for frame in second.feed(copy.deepcopy(event)))


def test_truncated_stream_is_an_error_not_a_stop():
    recording = names("openai-dotnet/ResponsesTests_StreamingResponses#1")[0]
    translator, frames = run(recording.events[:-3])
    assert "error" in frames[-1] and translator.error.status == 502
    assert not fold(frames)["finish_reasons"]


@pytest.mark.parametrize("event", [
    {"type": "error", "code": "server_error", "message": "boom", "param": None},
    {"type": "error", "error": {"type": "server_error", "code": "server_error", "message": "boom"}},
])
def test_error_event_flat_and_nested(event):
    translator, frames = run([{"type": "response.created", "response": {"status": "in_progress"}}, event])
    assert frames[-1]["error"]["message"] == "boom"
    assert translator.error.status == 500
    check_frames(frames)


def test_arguments_only_in_done_events_still_reach_the_client():
    item = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f", "arguments": ""}
    done_item = {**item, "arguments": '{"x":1}'}
    events = [
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.function_call_arguments.done", "item_id": "fc_1", "output_index": 0, "arguments": '{"x":1}'},
        {"type": "response.output_item.done", "output_index": 0, "item": done_item},
        {"type": "response.completed", "response": {"status": "completed", "output": [done_item]}},
    ]
    _, frames = run(events)
    check_frames(frames)
    assert fold(frames)["message"]["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}}]
    assert fold(frames)["finish_reasons"] == ["tool_calls"]


def test_output_present_only_in_the_terminal_event_is_not_lost():
    final = {"status": "completed", "output": [
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "thought"}]},
        {"type": "message", "id": "msg_1", "content": [{"type": "output_text", "text": "answer", "annotations": []}]},
        {"type": "function_call", "id": "fc_1", "call_id": "call_9", "name": "g", "arguments": "{}"},
    ]}
    _, frames = run([{"type": "response.completed", "response": final}])
    check_frames(frames)
    message = fold(frames)["message"]
    assert message["reasoning_content"] == "thought" and message["content"] == "answer"
    assert message["tool_calls"][0]["id"] == "call_9"


def test_unknown_and_malformed_events_are_ignored():
    recording = names("openai-dotnet/ResponsesTests_StreamingResponses#1")[0]
    noisy = [{"type": "response.brand_new_event", "x": 1}, "not a dict", {"no": "type"}] + list(recording.events)
    _, frames = run(noisy)
    check_frames(frames)
    _, clean = run(recording.events)
    assert fold(frames) == fold(clean)


def test_events_after_the_end_are_ignored():
    recording = names("openai-dotnet/ResponsesTests_StreamingResponses#1")[0]
    translator, frames = run(list(recording.events) + list(recording.events))
    check_frames(frames)
    assert translator.feed(recording.events[5]) == []


JUNK_EVENTS = [
    {"type": ["response.output_text.delta"], "delta": "x"},
    {"type": "response.output_text.delta", "item_id": "msg_1", "content_index": [0], "delta": "a",
     "logprobs": [{"token": 1, "logprob": "high", "bytes": "b", "top_logprobs": {"x": 1}}]},
    {"type": "response.output_text.annotation.added", "item_id": "msg_1", "content_index": {"i": 0},
     "annotation": {"type": "url_citation", "url": "https://a.example/", "title": "A", "start_index": 0, "end_index": 1}},
    {"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "summary_index": [1], "delta": "think"},
    {"type": "response.output_item.added", "output_index": [3],
     "item": {"type": "function_call", "id": "fc_1", "call_id": 7, "name": ["f"], "arguments": {"a": 1}}},
    {"type": "response.function_call_arguments.delta", "output_index": {"x": 1}, "delta": "{}"},
    {"type": "response.output_item.done", "output_index": 4,
     "item": {"type": "web_search_call", "id": "ws_1", "action": "search"}},
    {"type": "response.output_item.done", "output_index": 5, "item": {"type": "reasoning", "id": "rs_2", "summary": 3}},
    {"type": "response.output_item.done", "output_index": 6, "item": {"type": "message", "id": "msg_2", "content": 5}},
    {"type": "response.completed", "response": {
        "status": "incomplete", "incomplete_details": "max_output_tokens", "output": 5, "model": ["m"],
        "service_tier": ["default"], "usage": {"input_tokens": 1, "input_tokens_details": "none",
                                              "output_tokens_details": [1]}}},
]


def test_fields_of_the_wrong_type_count_as_absent():
    """A misbehaving upstream must get a well-formed answer or error, never an exception mid-stream."""
    translator, frames = run(JUNK_EVENTS)
    check_frames(frames)
    folded = fold(frames)
    assert folded["message"]["content"] == "a"
    assert folded["message"]["reasoning_content"] == "think"
    assert folded["finish_reasons"] == ["length"]
    assert [(call["id"], call["function"]["name"]) for call in folded["message"]["tool_calls"]] == [("fc_1", "")]
    assert frames[-1]["usage"]["prompt_tokens"] == 1
    assert responses_to_chat({"status": ["x"], "model": 5, "service_tier": {}, "output": []})["model"] == ""


def test_numeric_error_codes_become_strings():
    """Some gateways send numbers; the chat error shape (and the SDKs) want a string or null."""
    _, frames = run([{"type": "error", "code": 429, "message": "Slow down."}])
    check_frames(frames)
    assert frames[-1]["error"]["code"] == "429"


def test_azures_prompt_filter_results_known_only_at_the_end_come_before_the_last_chunk():
    """Where only the final Response carries ``content_filters``, the prompt's results still come in a chunk of
    their own, before the choice's last chunk, which carries the output's; a second choice sends no prompt results."""
    results = {"hate": {"filtered": False, "severity": "safe"}}
    final = {"id": "resp_1", "status": "completed", "model": "o3-pro", "output": [
        {"type": "message", "id": "msg_1", "content": [{"type": "output_text", "text": "hi"}]}], "content_filters": [
        {"blocked": False, "source_type": "prompt", "content_filter_results": results},
        {"blocked": False, "source_type": "completion", "content_filter_results": results}]}
    translator = StreamTranslator("o3-pro")
    frames = translator.start()
    frames += translator.feed({"type": "response.created", "response": {**final, "status": "in_progress",
                                                                          "output": [], "content_filters": []}})
    assert not any("prompt_filter_results" in frame for frame in frames)
    frames += translator.feed({"type": "response.completed", "response": final})
    for frame in frames:
        check_chat_chunk(frame)
    prompt = [index for index, frame in enumerate(frames) if "prompt_filter_results" in frame]
    assert len(prompt) == 1 and frames[prompt[0]]["choices"] == [] and prompt[0] < len(frames) - 1
    assert frames[-1]["choices"][0]["finish_reason"] == "stop"
    assert frames[-1]["choices"][0]["content_filter_results"] == results
    second = StreamTranslator("o3-pro", choice_index=1)
    second.start()
    assert not any("prompt_filter_results" in frame for frame in second.feed({"type": "response.completed",
                                                                              "response": final}))
