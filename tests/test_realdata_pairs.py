"""Conversations recorded on both APIs: the proxy's answer matches what Chat Completions really answered.

Each pair is one conversation that an upstream project's test sent to the Responses API and to Chat
Completions (`realdata.paired_conversations()`). Here the recorded Chat request goes to the real proxy
(translating every model), the fake upstream answers with the recorded Responses answer, and the
proxy's Chat answer is compared with the recorded Chat answer.

Ids, timestamps, model snapshot names, `obfuscation` and `system_fingerprint` are never compared. The
two recordings are separate samples of the model, so free text is compared where the request fixes it
(structured output, quoted tool results) and otherwise by what kind of answer it is; each such
difference is explained where it is allowed.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

import realdata
from chunks import comparable, fold
from conftest import proxy_config
from fake_upstream import Reply, Stream
from servers import running_proxy
from spec_check import check_chat_chunk, check_chat_completion, check_create_response

PAIRS = realdata.paired_conversations()

# Fields of the real answer the proxy does not produce, and why that is allowed.
NOT_PRODUCED = {
    "system_fingerprint",  # Chat-only backend configuration id; the Responses API has none.
    "obfuscation",  # random padding against length side channels; the proxy sends no encrypted lengths to pad.
    # Sent on every streamed chunk by Chat; the Responses stream settles the tier only in its last event,
    # so the proxy reports it in non-streamed answers only.
    "service_tier",
}
# Usage details with no Responses counterpart (no audio; no predicted outputs for Responses models).
USAGE_DETAILS_NOT_PRODUCED = {"audio_tokens", "accepted_prediction_tokens", "rejected_prediction_tokens"}


@pytest.fixture(scope="module")
def translating_proxy(fake_server):
    """A proxy translating every model: the pairs were recorded with gpt-4o, which Chat also serves."""
    with running_proxy(proxy_config(fake_server.base_url, translate={"all_models": True})) as url:
        yield url


def ask_proxy(url: str, fake, responses: realdata.Recording, chat: realdata.Recording) -> dict[str, Any]:
    """Send the recorded Chat request; the upstream answers with the recorded Responses answer."""
    if responses.kind == "stream":
        fake.script(Stream(events=[dict(event) for event in responses.events]))
    else:
        fake.script(Reply(json=responses.body))
    answer = httpx.post(url + "/v1/chat/completions", json=chat.request, timeout=30)
    assert answer.status_code == 200, answer.text
    if not chat.request.get("stream"):
        return {"completion": answer.json()}
    payloads = [line[6:] for line in answer.text.split("\n") if line.startswith("data: ")]
    assert payloads[-1] == "[DONE]"
    return {"chunks": [json.loads(payload) for payload in payloads[:-1]]}


def folded(answer: dict[str, Any]) -> dict[str, Any]:
    """Message, finish reason and usage of a streamed or whole answer, in one shape."""
    if "chunks" in answer:
        result = fold(answer["chunks"])
        return {"message": result["message"], "finish_reason": result["finish_reasons"], "usage": result["usage"]}
    choice = answer["completion"]["choices"][0]
    message = comparable(choice["message"])
    # Chat always sends `annotations` (empty without citations); the proxy sends it only when there are any.
    if message.get("annotations") == []:
        del message["annotations"]
    return {"message": message, "finish_reason": [choice["finish_reason"]], "usage": answer["completion"]["usage"]}


def real_answer(chat: realdata.Recording) -> dict[str, Any]:
    return {"chunks": chat.events} if chat.kind == "stream" else {"completion": chat.body}


def real_answer_was_cut(chat: realdata.Recording) -> bool:
    return folded(real_answer(chat))["finish_reason"] == ["length"]


def tool_outputs(chat_request: dict[str, Any]) -> list[str]:
    return [message["content"] for message in chat_request["messages"] if message.get("role") == "tool"]


@pytest.mark.parametrize(("responses", "chat"), PAIRS, ids=[chat.name for _, chat in PAIRS])
def test_translated_answer_matches_the_real_chat_answer(translating_proxy, fake, responses, chat):
    ours = folded(ask_proxy(translating_proxy, fake, responses, chat))
    real = folded(real_answer(chat))
    check_create_response(fake.requests_to("/responses")[0].json)

    assert ours["finish_reason"] == real["finish_reason"]
    assert ours["message"].keys() == real["message"].keys()

    ours_calls, real_calls = ours["message"].get("tool_calls", []), real["message"].get("tool_calls", [])
    assert [call["function"]["name"] for call in ours_calls] == [call["function"]["name"] for call in real_calls]
    # Same arguments; Chat writes its JSON with spaces after separators, Responses without.
    assert [json.loads(call["function"]["arguments"]) for call in ours_calls] == \
        [json.loads(call["function"]["arguments"]) for call in real_calls]
    assert all(call["id"].startswith("call_") for call in ours_calls)

    # Refusal and content: present in one exactly when present in the other.
    assert bool(ours["message"]["refusal"]) == bool(real["message"]["refusal"])
    assert bool(ours["message"]["content"]) == bool(real["message"]["content"])
    response_format = chat.request.get("response_format") or {}
    if response_format.get("type") == "json_schema" and real["message"]["content"]:
        assert json.loads(ours["message"]["content"]) == json.loads(real["message"]["content"])
    for output in tool_outputs(chat.request):
        # An answer built on tool results quotes them, in either API's sample.
        assert output in ours["message"]["content"] and output in real["message"]["content"]


@pytest.mark.parametrize(("responses", "chat"), PAIRS, ids=[chat.name for _, chat in PAIRS])
def test_usage_matches_where_both_apis_count_the_same(translating_proxy, fake, responses, chat):
    ours = folded(ask_proxy(translating_proxy, fake, responses, chat))["usage"]
    real = folded(real_answer(chat))["usage"]
    final = responses.events[-1]["response"] if responses.kind == "stream" else responses.body

    # The proxy reports exactly what the Responses answer counted.
    assert (ours["prompt_tokens"], ours["completion_tokens"], ours["total_tokens"]) == \
        (final["usage"]["input_tokens"], final["usage"]["output_tokens"], final["usage"]["total_tokens"])
    for usage in (ours, real):
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    for details in ("prompt_tokens_details", "completion_tokens_details"):
        assert ours[details].keys() == real[details].keys() - USAGE_DETAILS_NOT_PRODUCED
        assert all(ours[details][key] == real[details][key] for key in ours[details])

    # Token counts agree where both APIs count the same thing: a plain user prompt (tool definitions,
    # system text and response formats are rendered differently by each API before counting), and an
    # answer cut off by the same output limit (free text otherwise differs from sample to sample).
    request = chat.request
    plain_prompt = all(message["role"] == "user" for message in request["messages"]) and \
        not request.get("tools") and not request.get("response_format")
    if plain_prompt:
        assert ours["prompt_tokens"] == real["prompt_tokens"]
    if real_answer_was_cut(chat):
        assert ours["completion_tokens"] == real["completion_tokens"] == request["max_tokens"]


def test_the_pairs_cover_each_comparison():
    """Every rule above is exercised by some pair, so none of the conditional checks is vacuous."""
    kinds = [(folded(real_answer(chat)), chat.request) for _, chat in PAIRS]
    assert any(answer["message"]["refusal"] for answer, _ in kinds)
    assert any(answer["message"].get("tool_calls") for answer, _ in kinds)
    assert any(tool_outputs(request) for _, request in kinds)
    assert any(answer["finish_reason"] == ["length"] for answer, _ in kinds)
    assert any((request.get("response_format") or {}).get("type") == "json_schema" and answer["message"]["content"]
               for answer, request in kinds)
    assert any(all(m["role"] == "user" for m in request["messages"]) and not request.get("tools")
               and not request.get("response_format") for _, request in kinds)


@pytest.mark.parametrize(("responses", "chat"), PAIRS, ids=[chat.name for _, chat in PAIRS])
def test_envelope_has_the_real_fields(translating_proxy, fake, responses, chat):
    ours = ask_proxy(translating_proxy, fake, responses, chat)
    real = real_answer(chat)
    if "chunks" in ours:
        for chunk in ours["chunks"]:
            check_chat_chunk(chunk)
        ours_keys = set().union(*(chunk.keys() for chunk in ours["chunks"]))
        real_keys = set().union(*(chunk.keys() for chunk in real["chunks"]))
        ours_choice = set().union(*(c.keys() for chunk in ours["chunks"] for c in chunk["choices"]))
        real_choice = set().union(*(c.keys() for chunk in real["chunks"] for c in chunk["choices"]))
        assert ours_choice == real_choice
        # Chat sends `usage: null` on every chunk but the last when usage is asked for; the proxy leaves the
        # key out until the usage chunk, which the spec and the SDKs accept alike.
        assert [chunk for chunk in ours["chunks"] if chunk.get("usage")] == ours["chunks"][-1:]
    else:
        check_chat_completion(ours["completion"])
        ours_keys, real_keys = set(ours["completion"]), set(real["completion"])
        assert set(ours["completion"]["choices"][0]) == set(real["completion"]["choices"][0])
    assert ours_keys <= real_keys
    assert real_keys - ours_keys <= NOT_PRODUCED
