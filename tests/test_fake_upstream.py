"""The fake upstream must look like api.openai.com to the official SDK.

If the SDK parses the fake's answers and streams the way it parses the live
API's, tests that put the proxy in front of the fake exercise the proxy
against realistic traffic.
"""

from __future__ import annotations

import hashlib
import json
import time

import httpx
import openai
import pytest

from fake_upstream import (
    CHAT_ONLY_IN_RESPONSES,
    SPEECH_BYTES,
    Hang,
    Reply,
    Respond,
    Stream,
    build_response,
    custom_tool_call_item,
    error_body,
    function_call_item,
    message_item,
    reasoning_item,
    running_fake_upstream,
    sse_bytes,
    stream_events,
    url_citation,
    web_search_call_item,
)


@pytest.fixture(scope="module")
def server():
    with running_fake_upstream() as fake:
        yield fake


@pytest.fixture
def fake(server):
    server.reset()
    return server


@pytest.fixture
def client(fake):
    return openai.OpenAI(base_url=fake.base_url, api_key="k", max_retries=0, timeout=5)


def _types(events) -> list[str]:
    return [e.type for e in events]


def _parse_sse(raw: str) -> list[tuple[str | None, str]]:
    frames = []
    for block in raw.split("\n\n"):
        if block:
            lines = dict(line.split(": ", 1) for line in block.split("\n"))
            frames.append((lines.get("event"), lines["data"]))
    return frames


# ---------------------------------------------------------------- default behaviour


def test_default_answer_echoes_last_user_text_with_summary(fake, client):
    response = client.responses.create(
        model="gpt-5",
        input=[{"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"},
               {"role": "user", "content": [{"type": "input_text", "text": "Hello there"}]}],
        reasoning={"effort": "low", "summary": "auto"},
        instructions="Be brief.",
    )
    assert response.output_text == "Echo: Hello there"
    assert response.status == "completed"
    assert response.model == "gpt-5-2025-08-07"
    assert response.instructions == "Be brief."
    assert response.reasoning.effort == "low"
    assert response.reasoning.summary == "detailed"
    reasoning, message = response.output
    assert reasoning.type == "reasoning" and reasoning.id.startswith("rs_")
    assert len(reasoning.summary) == 1 and reasoning.summary[0].text
    assert message.id.startswith("msg_") and response.id.startswith("resp_")
    usage = response.usage
    assert usage.output_tokens_details.reasoning_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens

    (recorded,) = fake.requests_to("/responses")
    assert recorded.headers["authorization"] == "Bearer k"
    assert recorded.json["reasoning"] == {"effort": "low", "summary": "auto"}


def test_default_reasoning_item_has_no_summary_unless_asked(client):
    response = client.responses.create(model="gpt-4o", input="hi")
    assert response.output[0].type == "reasoning" and response.output[0].summary == []
    assert response.output_text == "Echo: hi"
    assert response.reasoning.effort is None


def test_default_stream_follows_the_live_event_order(fake):
    body = {"model": "gpt-5", "input": "Say something long enough", "stream": True}
    with httpx.Client() as http:
        answer = http.post(f"{fake.base_url}/responses", json=body)
    assert answer.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert answer.headers["x-request-id"].startswith("req_")
    frames = _parse_sse(answer.text)
    events = [json.loads(data) for _, data in frames]
    assert [name for name, _ in frames] == [e["type"] for e in events]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    kinds = [e["type"] for e in events]
    deltas = kinds.count("response.output_text.delta")
    assert kinds == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.output_item.done",
        "response.output_item.added", "response.content_part.added",
        *["response.output_text.delta"] * deltas,
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.completed",
    ]
    assert deltas > 1
    created, completed = events[0]["response"], events[-1]["response"]
    assert created["status"] == "in_progress" and created["output"] == [] and created["usage"] is None
    assert created["id"] == completed["id"]
    assert completed["output"][1]["content"][0]["text"] == "Echo: Say something long enough"
    assert all(len(e["delta"] + e["obfuscation"]) % 16 == 0 for e in events if "delta" in e)


def test_stream_without_obfuscation_when_asked(fake):
    body = {"model": "gpt-5", "input": "hi", "stream": True, "stream_options": {"include_obfuscation": False}}
    with httpx.Client() as http:
        text = http.post(f"{fake.base_url}/responses", json=body).text
    assert "response.output_text.delta" in text and "obfuscation" not in text


# ---------------------------------------------------------------- Respond


def test_stream_helper_accumulates_summary_and_function_call(fake, client):
    fake.script(Respond(output=[
        reasoning_item(["**Planning**\n\nLook up the weather.", "Then answer."]),
        function_call_item("get_weather", {"city": "Paris"}, call_id="call_abc"),
    ]))
    with client.responses.stream(model="o3", input="weather?", reasoning={"summary": "auto"}) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = _types(events)
    assert kinds.count("response.reasoning_summary_part.added") == 2
    assert kinds.count("response.reasoning_summary_part.done") == 2
    summary = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta"
                      and e.summary_index == 0)
    assert summary == "**Planning**\n\nLook up the weather."
    arguments = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert arguments == '{"city":"Paris"}'
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert done.arguments == arguments and done.output_index == 1
    call = final.output[1]
    assert (call.type, call.name, call.call_id, call.arguments) == (
        "function_call", "get_weather", "call_abc", '{"city":"Paris"}')
    assert [p.text for p in final.output[0].summary] == ["**Planning**\n\nLook up the weather.", "Then answer."]


def test_custom_tool_call_input_is_streamed_as_the_api_streams_it(fake, client):
    patch = "*** Begin Patch\n*** Update File: a.txt\n@@\n-old\n+new\n*** End Patch\n"
    fake.script(Respond(output=[custom_tool_call_item("apply_patch", patch, call_id="call_patch")]))
    with client.responses.stream(model="gpt-5.5", input="edit a.txt") as stream:
        events = list(stream)
        final = stream.get_final_response()
    added = next(e for e in events if e.type == "response.output_item.added")
    assert (added.item.type, added.item.input) == ("custom_tool_call", "")
    pieces = [e.delta for e in events if e.type == "response.custom_tool_call_input.delta"]
    assert len(pieces) > 1 and "".join(pieces) == patch
    done = next(e for e in events if e.type == "response.custom_tool_call_input.done")
    assert done.input == patch and done.item_id == added.item.id
    (call,) = final.output
    assert (call.type, call.name, call.call_id, call.input) == ("custom_tool_call", "apply_patch", "call_patch", patch)


def test_refusal_as_json_and_as_events(fake, client):
    fake.script(Respond(output=[message_item(refusal="I can't help with that.")]),
                Respond(output=[message_item(refusal="I can't help with that.")]))
    part = client.responses.create(model="gpt-4o", input="x").output[0].content[0]
    assert (part.type, part.refusal) == ("refusal", "I can't help with that.")
    events = list(client.responses.create(model="gpt-4o", input="x", stream=True))
    refusal = "".join(e.delta for e in events if e.type == "response.refusal.delta")
    assert refusal == "I can't help with that."
    assert "response.refusal.done" in _types(events)
    assert "response.output_text.delta" not in _types(events)


def test_incomplete_stream_ends_with_response_incomplete(fake, client):
    fake.script(Respond(output=[message_item("Alabama, Alaska")], status="incomplete"))
    events = list(client.responses.create(model="gpt-4o", input="states", stream=True, max_output_tokens=16))
    last = events[-1]
    assert last.type == "response.incomplete"
    assert last.response.incomplete_details.reason == "max_output_tokens"
    assert last.response.max_output_tokens == 16
    assert last.response.output[0].status == "incomplete"


def test_failed_response_as_json_and_stream(fake, client):
    quota = {"code": "insufficient_quota", "message": "You exceeded your current quota."}
    fake.script(Respond(status="failed", error=quota), Respond(status="failed", error=quota))
    response = client.responses.create(model="gpt-5", input="x")
    assert response.status == "failed" and response.error.code == "insufficient_quota"
    assert response.usage is None
    seen = []
    with pytest.raises(openai.APIError, match="exceeded your current quota"):
        for event in client.responses.create(model="gpt-5", input="x", stream=True):
            seen.append(event.type)
    assert seen == ["response.created", "response.in_progress"]


def test_failed_stream_ends_with_error_then_response_failed():
    events = stream_events(build_response({"model": "gpt-5"}, [], status="failed"))
    error, failed = events[-2:]
    assert error["type"] == "error" and error["code"] == "server_error" and error["error"]["code"] == "server_error"
    assert failed["type"] == "response.failed" and failed["response"]["error"]["code"] == "server_error"


def test_web_search_with_citation(fake, client):
    text = "Bitcoin traded near $90k ([example.com](https://example.com/btc)) that day."
    start = text.index("(")
    citation = url_citation("https://example.com/btc", "BTC", start, text.index(")", start + 20) + 1)
    fake.script(Respond(output=[web_search_call_item("bitcoin price"),
                                message_item(text, annotations=[citation])]))
    with client.responses.stream(model="gpt-4o", input="btc?", tools=[{"type": "web_search"}]) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = _types(events)
    assert kinds[2:7] == ["response.output_item.added", "response.web_search_call.in_progress",
                          "response.web_search_call.searching", "response.web_search_call.completed",
                          "response.output_item.done"]
    added = kinds.index("response.output_text.annotation.added")
    cited = events[added - 1]
    assert cited.type == "response.output_text.delta" and cited.delta == text[start:citation["end_index"]]
    assert events[added].annotation_index == 0
    assert final.output_text == text
    assert final.output[0].action.query == "bitcoin price"
    assert final.output[1].content[0].annotations[0].url == "https://example.com/btc"
    assert final.tools[0].type == "web_search"


# ---------------------------------------------------------------- Stream, Reply, Hang


def test_cut_stream_is_a_broken_stream_for_the_sdk(fake, client):
    events = stream_events(build_response({"model": "gpt-4o"}, [message_item("a fairly long answer text")]))
    fake.script(Stream(events, cut_after=4))
    seen = []
    with pytest.raises(openai.APIConnectionError):
        for event in client.responses.create(model="gpt-4o", input="x", stream=True):
            seen.append(event.sequence_number)
    assert seen == [0, 1, 2, 3]
    assert fake.disconnects == 0


def test_stream_numbers_events_and_writes_raw_bytes(fake):
    raw = [b"data: {not json\n\n", b": comment\n\n"]
    fake.script(Stream([{"type": "response.created", "response": {}}, {"type": "response.in_progress", "response": {}},
                        {"type": "custom", "sequence_number": 7}, {"type": "after"}], raw=raw))
    with httpx.Client() as http:
        body = http.post(f"{fake.base_url}/responses", json={}).content
    frames = body.split(b"\n\n")
    assert [json.loads(f.split(b"data: ")[1])["sequence_number"] for f in frames[:4]] == [0, 1, 7, 8]
    assert body.endswith(raw[0] + raw[1])
    assert frames[0].startswith(b"event: response.created\ndata: ")


def test_stream_delay_and_heartbeat_pause(fake):
    events = [{"type": f"e{i}"} for i in range(4)]
    fake.script(Stream(events, delay=0.01, heartbeat_pause=0.3))
    arrivals = []
    start = time.monotonic()
    with httpx.Client() as http, http.stream("POST", f"{fake.base_url}/responses", json={}) as answer:
        for line in answer.iter_lines():
            if line.startswith("event:"):
                arrivals.append(time.monotonic() - start)
    assert len(arrivals) == 4
    assert arrivals[2] - arrivals[1] >= 0.3
    assert arrivals[3] - arrivals[2] < 0.2


@pytest.mark.parametrize(("status", "exception"), [
    (400, openai.BadRequestError), (401, openai.AuthenticationError),
    (429, openai.RateLimitError), (500, openai.InternalServerError),
])
def test_reply_error_maps_to_sdk_exception(fake, client, status, exception):
    body = error_body("Invalid 'temperature': decimal below minimum value.", param="temperature",
                      code="decimal_below_min_value")
    fake.script(Reply(status, json=body, headers={"x-request-id": "req_fixed"}))
    with pytest.raises(exception) as caught:
        client.responses.create(model="gpt-4o", input="x", stream=True)
    assert caught.value.status_code == status
    assert caught.value.body == body["error"]
    assert caught.value.request_id == "req_fixed"


def test_hang_until_the_client_gives_up_counts_a_disconnect(fake):
    fake.script(Hang(5))
    slow = openai.OpenAI(base_url=fake.base_url, api_key="k", max_retries=0, timeout=0.1)
    with pytest.raises(openai.APITimeoutError):
        slow.responses.create(model="gpt-4o", input="x")
    fake.wait_for_disconnect(timeout=2)
    assert fake.disconnects == 1


def test_hang_then_close_without_answer(fake, client):
    fake.script(Hang(0.05))
    with pytest.raises(openai.APIConnectionError):
        client.responses.create(model="gpt-4o", input="x")
    assert fake.disconnects == 0


async def test_client_leaving_a_stream_is_counted(fake):
    events = stream_events(build_response({"model": "gpt-4o"}, [message_item("x" * 200)]))
    fake.script(Stream(events, delay=0.02))
    client = openai.AsyncOpenAI(base_url=fake.base_url, api_key="k", max_retries=0)
    stream = await client.responses.create(model="gpt-4o", input="x", stream=True)
    async for event in stream:
        if event.sequence_number == 2:
            break
    await stream.close()
    await fake.wait_for_disconnect(timeout=2)
    assert fake.disconnects == 1
    await client.close()


def test_scripted_behaviours_are_consumed_in_order(fake, client):
    fake.script(Respond(output=[message_item("one")]), Reply(503, json=error_body("busy", type="server_error")))
    assert client.responses.create(model="gpt-4o", input="x").output_text == "one"
    with pytest.raises(openai.APIStatusError):
        client.responses.create(model="gpt-4o", input="x")
    assert client.responses.create(model="gpt-4o", input="x").output_text == "Echo: x"
    assert len(fake.requests_to("/v1/responses")) == 3


# ---------------------------------------------------------------- stored and background responses


def test_background_create_poll_and_final(fake, client):
    fake.script(Respond(output=[message_item("Done in the background.")]))
    created = client.responses.create(model="o3-pro", input="x", background=True)
    assert created.status == "queued" and created.background is True and created.output == []
    assert client.responses.retrieve(created.id).status == "in_progress"
    final = client.responses.retrieve(created.id)
    assert final.status == "completed" and final.output_text == "Done in the background."
    assert final.id == created.id
    assert [r.path for r in fake.requests_to(created.id, "GET")] == [f"/v1/responses/{created.id}"] * 2


def test_background_cancel(fake, client):
    created = client.responses.create(model="o3-pro", input="x", background=True)
    cancelled = client.responses.cancel(created.id)
    assert cancelled.status == "cancelled"
    assert fake.cancelled == [created.id]
    assert client.responses.retrieve(created.id).status == "cancelled"
    plain = client.responses.create(model="gpt-4o", input="x")
    with pytest.raises(openai.BadRequestError):
        client.responses.cancel(plain.id)
    assert fake.cancelled == [created.id, plain.id]


def test_background_stream_can_be_resumed(fake, client):
    events = list(client.responses.create(model="o3-pro", input="resume me", background=True, stream=True))
    assert _types(events)[:3] == ["response.created", "response.queued", "response.in_progress"]
    assert events[0].response.status == "queued"
    assert not any(hasattr(e, "obfuscation") for e in events)
    resumed = list(client.responses.retrieve(events[0].response.id, stream=True, starting_after=4))
    assert [e.sequence_number for e in resumed] == [e.sequence_number for e in events[5:]]
    assert resumed[-1].response.output_text == "Echo: resume me"


def test_cut_background_stream_resumes_from_the_stored_events(fake, client):
    text = "A background answer long enough to span several deltas."
    response = build_response({"model": "o3-pro", "background": True}, [message_item(text)])
    fake.script(Stream(stream_events(response), cut_after=6))
    seen = []
    with pytest.raises(openai.APIConnectionError):
        for event in client.responses.create(model="o3-pro", input="x", background=True, stream=True):
            seen.append(event)
    assert len(seen) == 6
    rest = list(client.responses.retrieve(response["id"], stream=True, starting_after=seen[-1].sequence_number))
    assert rest[0].sequence_number == 6 and rest[-1].type == "response.completed"
    assert "".join(e.delta for e in seen + rest if e.type == "response.output_text.delta") == text


def test_retrieve_can_be_scripted(fake, client):
    fake.script(Respond(output=[message_item("scripted")], model="o3-pro"))
    retrieved = client.responses.retrieve("resp_anything")
    assert (retrieved.id, retrieved.output_text, retrieved.model) == ("resp_anything", "scripted", "o3-pro")


def test_unknown_and_deleted_responses_are_404(client):
    stored = client.responses.create(model="gpt-4o", input="x")
    assert client.responses.retrieve(stored.id).output_text == "Echo: x"
    client.responses.delete(stored.id)
    with pytest.raises(openai.NotFoundError, match=f"Response with id '{stored.id}' not found."):
        client.responses.retrieve(stored.id)
    unstored = client.responses.create(model="gpt-4o", input="x", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)


# ---------------------------------------------------------------- pass-through endpoints


def test_chat_completions_for_responses_only_models_is_404(fake, client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="o3-pro", messages=[{"role": "user", "content": "x"}])
    assert caught.value.body == {"message": CHAT_ONLY_IN_RESPONSES, "type": "invalid_request_error",
                                 "param": "model", "code": None}
    fake.responses_only.discard("o3-pro")
    answer = client.chat.completions.create(model="o3-pro", messages=[{"role": "user", "content": "x"}])
    assert answer.choices[0].message.content == "Echo: x"


def test_chat_completion_echo_and_stream(fake, client):
    answer = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hello"}])
    assert answer.choices[0].message.content == "Echo: hello" and answer.model == "gpt-4o-2024-08-06"
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hello"}],
                                                 stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: hello"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    with httpx.Client() as http:
        raw = http.post(f"{fake.base_url}/chat/completions",
                        json={"model": "gpt-4o", "messages": [], "stream": True}).text
    assert raw.endswith("data: [DONE]\n\n") and "event:" not in raw and '"usage"' not in raw


def test_models_and_embeddings(client):
    assert {"o3-pro", "gpt-4o"} <= {m.id for m in client.models.list()}
    embedded = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert [d.index for d in embedded.data] == [0, 1]
    assert all(abs(sum(v * v for v in d.embedding) - 1) < 1e-4 for d in embedded.data)
    floats = client.embeddings.create(model="text-embedding-3-small", input="a", encoding_format="float",
                                      dimensions=4)
    assert len(floats.data[0].embedding) == 4


def test_transcription_receives_the_multipart_body_intact(fake, client):
    audio = bytes(range(256)) * 41 + b"\r\n--tail\r\n"
    with httpx.Client() as http:
        answer = http.post(f"{fake.base_url}/audio/transcriptions",
                           files={"file": ("clip.wav", audio, "audio/wav")},
                           data={"model": "whisper-1", "language": "en"}).json()
    assert answer["file"] == {"field": "file", "filename": "clip.wav", "content_type": "audio/wav",
                              "size": len(audio), "sha256": hashlib.sha256(audio).hexdigest()}
    assert answer["fields"] == {"model": "whisper-1", "language": "en"}
    assert client.audio.transcriptions.create(model="whisper-1", file=("a.mp3", b"ID3")).text == \
        "Transcript of a.mp3"


def test_speech_is_streamed_binary(fake):
    with httpx.Client() as http, http.stream("POST", f"{fake.base_url}/audio/speech",
                                             json={"model": "tts-1", "input": "hi", "voice": "alloy"}) as answer:
        assert answer.headers["content-type"] == "audio/mpeg"
        assert answer.headers["transfer-encoding"] == "chunked"
        body = b"".join(answer.iter_bytes())
    assert body == SPEECH_BYTES and len(body) == 300_000


def test_unknown_url_and_bad_json(fake):
    with httpx.Client() as http:
        missing = http.post(f"{fake.base_url}/nope", json={})
        bad = http.post(f"{fake.base_url}/responses", content=b"{", headers={"content-type": "application/json"})
    assert missing.status_code == 404
    assert missing.json() == error_body("Invalid URL (POST /v1/nope)")
    assert bad.status_code == 400 and "could not parse the JSON body" in bad.json()["error"]["message"]
    assert [r.json for r in fake.requests] == [{}, None]
    assert fake.requests[1].body == b"{"


def test_sse_frame_format():
    assert sse_bytes({"type": "response.created", "x": "é"}) == \
        'event: response.created\ndata: {"type":"response.created","x":"é"}\n\n'.encode()


def test_starts_fast_on_a_free_port():
    start = time.monotonic()
    with running_fake_upstream() as fake:
        assert time.monotonic() - start < 2  # polls for readiness (~0.05 s here), never a fixed wait; slack for loaded CI
        assert fake.base_url.startswith("http://127.0.0.1:") and fake.base_url.endswith("/v1")
