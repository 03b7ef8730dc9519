"""Responses result -> Chat Completion: every mapping rule, checked against the official schema."""

from __future__ import annotations

import itertools

import pytest

from proxy.errors import ProxyError
from proxy.translate import responses_to_chat, summed_usage
from spec_check import check_chat_completion

pytestmark = pytest.mark.core  # the pure translation core: `pytest -m core` runs these alone

USAGE = {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 40}, "output_tokens": 300,
         "output_tokens_details": {"reasoning_tokens": 250}, "total_tokens": 400}


def response(output, status="completed", **extra):
    return {"id": "resp_1", "object": "response", "created_at": 1700000000, "status": status,
            "model": "o3-pro-2025-06-10", "output": output, "usage": USAGE, **extra}


IDS = itertools.count(1)


def text_item(*texts, annotations=()):
    return {"type": "message", "id": f"msg_{next(IDS)}", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": list(annotations)} for text in texts]}


def reasoning_item(*parts):
    return {"type": "reasoning", "id": f"rs_{next(IDS)}", "summary": [{"type": "summary_text", "text": p} for p in parts]}


def call_item(name, arguments, call_id):
    return {"type": "function_call", "id": "fc_" + call_id, "call_id": call_id, "name": name,
            "arguments": arguments, "status": "completed"}


def chat(resp):
    completion = responses_to_chat(resp)
    check_chat_completion(completion)
    return completion


def test_text_reasoning_and_usage():
    completion = chat(response([reasoning_item("First idea.", "Second idea."), text_item("Hello", " world")]))
    assert completion["object"] == "chat.completion"
    assert completion["id"].startswith("chatcmpl-")
    assert completion["model"] == "o3-pro-2025-06-10"
    assert completion["created"] == 1700000000
    (choice,) = completion["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop" and choice["logprobs"] is None
    assert choice["message"] == {"role": "assistant", "content": "Hello world", "refusal": None,
                                 "reasoning_content": "First idea.\n\nSecond idea."}
    assert completion["usage"] == {"prompt_tokens": 100, "completion_tokens": 300, "total_tokens": 400,
                                   "prompt_tokens_details": {"cached_tokens": 40},
                                   "completion_tokens_details": {"reasoning_tokens": 250}}


def test_cache_writes_are_reported_when_the_upstream_counts_them():
    usage = {**USAGE, "input_tokens_details": {"cached_tokens": 40, "cache_write_tokens": 60}}
    assert chat(response([text_item("x")], usage=usage))["usage"]["prompt_tokens_details"] == {
        "cached_tokens": 40, "cache_write_tokens": 60}


def test_usage_of_several_choices_is_summed_detail_by_detail():
    written = {**USAGE, "input_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 5}}
    total = summed_usage([response([], usage=USAGE), None, response([], usage=written)])
    assert total == {"prompt_tokens": 200, "completion_tokens": 600, "total_tokens": 800,
                     "prompt_tokens_details": {"cached_tokens": 50, "cache_write_tokens": 5},
                     "completion_tokens_details": {"reasoning_tokens": 500}}


def test_reasoning_from_several_items_in_order():
    completion = chat(response([reasoning_item("a"), text_item("x"), reasoning_item("b", "c"), text_item("y")]))
    message = completion["choices"][0]["message"]
    assert message["reasoning_content"] == "a\n\nb\n\nc"
    assert message["content"] == "xy"


def test_tool_calls_use_call_id_and_keep_text():
    completion = chat(response([text_item("Checking."), call_item("weather", '{"city":"Paris"}', "call_a"),
                                call_item("time", "{}", "call_b")]))
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Checking."
    assert choice["message"]["tool_calls"] == [
        {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "time", "arguments": "{}"}},
    ]


def test_tool_calls_only_have_null_content():
    message = chat(response([call_item("f", "{}", "call_1")]))["choices"][0]["message"]
    assert message["content"] is None


def test_refusal():
    item = {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
            "content": [{"type": "refusal", "refusal": "I can't help with that."}]}
    message = chat(response([item]))["choices"][0]["message"]
    assert message["refusal"] == "I can't help with that." and message["content"] is None


def test_annotations_are_nested_and_offset_across_parts():
    citation = {"type": "url_citation", "start_index": 2, "end_index": 5, "url": "https://a.example/", "title": "A"}
    completion = chat(response([text_item("abcdef"), text_item("0123456789", annotations=[citation])]))
    assert completion["choices"][0]["message"]["annotations"] == [
        {"type": "url_citation", "url_citation": {"start_index": 8, "end_index": 11, "url": "https://a.example/",
                                                  "title": "A"}}]


@pytest.mark.parametrize("reason, finish", [("max_output_tokens", "length"), ("content_filter", "content_filter")])
def test_incomplete_keeps_partial_content(reason, finish):
    completion = chat(response([text_item("partial")], status="incomplete", incomplete_details={"reason": reason}))
    assert completion["choices"][0]["finish_reason"] == finish
    assert completion["choices"][0]["message"]["content"] == "partial"
    assert completion["usage"]["completion_tokens"] == 300


def test_incomplete_with_only_reasoning_has_empty_content():
    completion = chat(response([reasoning_item()], status="incomplete",
                               incomplete_details={"reason": "max_output_tokens"}))
    assert completion["choices"][0]["message"]["content"] == ""
    assert completion["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize("code, status", [
    ("server_error", 500), ("rate_limit_exceeded", 429), ("insufficient_quota", 429),
    ("invalid_prompt", 400), ("vector_store_timeout", 502), (None, 502),
])
def test_failed_response_becomes_an_error(code, status):
    failed = response([], status="failed", error={"code": code, "message": "It broke."})
    with pytest.raises(ProxyError) as error:
        responses_to_chat(failed)
    assert error.value.status == status
    assert error.value.body()["error"]["message"] == "It broke."
    assert error.value.body()["error"]["code"] == code


def test_failed_without_message_still_has_a_string_message():
    with pytest.raises(ProxyError) as error:
        responses_to_chat(response([], status="failed", error=None))
    assert isinstance(error.value.message, str) and error.value.message


def test_unknown_items_are_ignored_and_service_tier_kept():
    completion = chat(response([{"type": "web_search_call", "id": "ws_1", "status": "completed",
                                 "action": {"type": "search", "query": "x"}}, text_item("done")],
                               service_tier="default"))
    assert completion["choices"][0]["message"]["content"] == "done"
    assert completion["service_tier"] == "default"


FLAGGED = {"type": "moderation_result", "model": "omni-moderation-latest", "flagged": True,
           "categories": {"violence": True}, "category_scores": {"violence": 0.91},
           "category_applied_input_types": {"violence": ["text"]}}


def test_moderation_results_take_chat_shape():
    failed = {"type": "error", "code": "moderation_unavailable", "message": "Moderation timed out."}
    completion = chat(response([text_item("ok")], moderation={"input": FLAGGED, "output": failed}))
    assert completion["moderation"] == {
        "input": {"type": "moderation_results", "model": "omni-moderation-latest", "results": [FLAGGED]},
        "output": failed,
    }


@pytest.mark.parametrize("moderation", [None, {"input": FLAGGED}, "flagged", {"input": FLAGGED, "output": []}])
def test_no_moderation_or_an_unusable_one_adds_nothing(moderation):
    assert "moderation" not in chat(response([text_item("ok")], moderation=moderation))


# Azure OpenAI's content filter (its v1 REST reference: a Response's `content_filters`, entries of
# AzureContentFilterForResponsesAPI; its chat answers: `prompt_filter_results`, a choice's `content_filter_results`).
SAFE = {"filtered": False, "severity": "safe"}
HIGH = {"filtered": True, "severity": "high"}


def azure_filter(source, results, blocked=False):
    return {"blocked": blocked, "source_type": source, "content_filter_raw": [], "content_filter_results": results,
            "content_filter_offsets": {"start_offset": 0, "end_offset": 10, "check_offset": 0}}


def test_azures_filter_results_in_the_chat_shape_spans_of_one_side_merged():
    filters = [azure_filter("prompt", {"hate": SAFE, "jailbreak": {"filtered": False, "detected": True}}),
               azure_filter("prompt", {"hate": SAFE, "jailbreak": {"filtered": False, "detected": False}}),
               azure_filter("completion", {"violence": HIGH, "hate": SAFE}),
               azure_filter("completion", {"violence": SAFE, "hate": {"filtered": False, "severity": "low"}})]
    completion = responses_to_chat(response([text_item("ok")], content_filters=filters))
    check_chat_completion(completion)
    assert completion["prompt_filter_results"] == [{"prompt_index": 0, "content_filter_results": {
        "hate": SAFE, "jailbreak": {"filtered": False, "detected": True}}}]  # what one span found stays found
    assert completion["choices"][0]["content_filter_results"] == {
        "violence": HIGH, "hate": {"filtered": False, "severity": "low"}}


def test_a_blocked_completion_finishes_with_content_filter_even_over_tool_calls():
    filters = [azure_filter("prompt", {"hate": SAFE}), azure_filter("completion", {"violence": HIGH}, blocked=True)]
    completion = responses_to_chat(response([call_item("f", "{}", "call_1")], content_filters=filters))
    assert completion["choices"][0]["finish_reason"] == "content_filter"


def test_an_answer_without_content_filters_has_no_filter_fields():
    completion = responses_to_chat(response([text_item("ok")]))
    assert "prompt_filter_results" not in completion and "content_filter_results" not in completion["choices"][0]
