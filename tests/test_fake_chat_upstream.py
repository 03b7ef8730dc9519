"""The fake chat-only upstream must stream as DeepSeek, vLLM and llama.cpp do, so that the official SDK's chat
parser (which real chat clients share) reads it as it reads them, and must lack the Responses API as they do."""

from __future__ import annotations

import httpx
import openai
import pytest

from fake_chat_upstream import Chat, FakeChatUpstream, ToolCall
from fake_upstream import Reply, running_fake_upstream

CALLS = [ToolCall("exec_command", {"cmd": "ls -la"}, id="call_ls"),
         ToolCall("get_weather", {"city": "Paris"}, id="call_paris")]


@pytest.fixture(scope="module", params=["deepseek", "vllm", "llamacpp"])
def server(request):
    with running_fake_upstream(FakeChatUpstream(request.param)) as fake:
        yield fake


@pytest.fixture
def fake(server):
    server.reset()
    return server


@pytest.fixture
def client(fake):
    return openai.OpenAI(base_url=fake.base_url, api_key="k", max_retries=0, timeout=5)


def ask(client, **options):
    return client.chat.completions.create(model="deepseek-reasoner", messages=[{"role": "user", "content": "hi"}],
                                          **options)


def test_reasoning_then_content_streamed_with_a_usage_chunk(fake, client):
    fake.script(Chat(reasoning="Thinking about «hi».", content="Bonjour ☀️", usage={"prompt_tokens": 12}))
    chunks = list(ask(client, stream=True, stream_options={"include_usage": True}))
    deltas = [chunk.choices[0].delta for chunk in chunks if chunk.choices]
    reasoning = "".join(getattr(d, "reasoning_content", None) or "" for d in deltas)
    content = "".join(d.content or "" for d in deltas)
    assert (reasoning, content) == ("Thinking about «hi».", "Bonjour ☀️")
    first_text = next(n for n, d in enumerate(deltas) if d.content)
    assert all(not getattr(d, "reasoning_content", None) for d in deltas[first_text:])
    assert len([d for d in deltas if getattr(d, "reasoning_content", None)]) > 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    *_, last = chunks
    assert last.choices == [] and last.usage.prompt_tokens == 12
    assert last.usage.completion_tokens_details.reasoning_tokens > 0


def test_no_usage_chunk_unless_asked(fake, client):
    chunks = list(ask(client, stream=True))
    assert all(chunk.choices for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Echo: hi"


@pytest.mark.parametrize("interleave", [False, True])
def test_tool_calls_in_pieces_accumulate_by_index(fake, client, interleave):
    fake.script(Chat(content="Let me look.", tool_calls=CALLS, interleave=interleave))
    with client.chat.completions.stream(model="m", messages=[{"role": "user", "content": "go"}]) as stream:
        chunks = [event.chunk for event in stream if event.type == "chunk"]
        final = stream.get_final_completion()
    parts = [call for chunk in chunks for call in chunk.choices[0].delta.tool_calls or []]
    heads = [part for part in parts if part.id]
    assert [(h.index, h.id, h.function.name, h.function.arguments) for h in heads] == [
        (0, "call_ls", "exec_command", ""), (1, "call_paris", "get_weather", "")]
    indices = [part.index for part in parts if not part.id]
    assert len(indices) > 4
    assert (indices != sorted(indices)) is interleave
    message = final.choices[0].message
    assert final.choices[0].finish_reason == "tool_calls" and message.content == "Let me look."
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls] == [
        ("call_ls", "exec_command", '{"cmd":"ls -la"}'), ("call_paris", "get_weather", '{"city":"Paris"}')]


def test_generated_tool_call_ids_are_the_flavours(fake, client):
    fake.script(Chat(tool_calls=[ToolCall("f", {})]))
    (call,) = ask(client).choices[0].message.tool_calls
    prefix = {"deepseek": "call_00_", "vllm": "chatcmpl-tool-", "llamacpp": ""}[fake.flavour]
    assert call.id.startswith(prefix) and len(call.id) > len(prefix) + 8


def test_json_answer_with_reasoning_and_calls(fake, client):
    fake.script(Chat(reasoning="Plan.", tool_calls=CALLS[:1], usage={"cached_tokens": 3}))
    completion = ask(client)
    message = completion.choices[0].message
    assert (message.content, message.reasoning_content) == (None, "Plan.")
    assert message.tool_calls[0].function.arguments == '{"cmd":"ls -la"}'
    assert completion.usage.prompt_tokens_details.cached_tokens == 3
    if fake.flavour == "deepseek":
        assert completion.usage.prompt_cache_hit_tokens == 3


def test_length_finish(fake, client):
    fake.script(Chat(content="Cut sho", finish_reason="length"), Chat(content="Cut sho", finish_reason="length"))
    assert ask(client).choices[0].finish_reason == "length"
    chunks = list(ask(client, stream=True))
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["length"]


def test_reasoning_under_the_newer_field_name():
    with running_fake_upstream(FakeChatUpstream("vllm", reasoning_field="reasoning")) as fake:
        fake.script(Chat(reasoning="Hmm.", content="Yes."))
        client = openai.OpenAI(base_url=fake.base_url, api_key="k", max_retries=0, timeout=5)
        deltas = [chunk.choices[0].delta for chunk in ask(client, stream=True)]
    assert "".join(getattr(d, "reasoning", None) or "" for d in deltas) == "Hmm."
    assert not any(getattr(d, "reasoning_content", None) for d in deltas)


def test_error_before_the_stream_in_the_flavours_shape(fake, client):
    fake.script(Reply(400, fake.error_body(400, "This model's maximum context length is 65536 tokens.")))
    with pytest.raises(openai.BadRequestError) as raised:
        ask(client, stream=True)
    assert "maximum context length" in str(raised.value)


def test_error_chunk_mid_stream(fake, client):
    fake.script(Chat(reasoning="Working on it.", content="Partial answer", error_after=4))
    seen = []
    with pytest.raises(openai.APIError, match="failed while generating"):
        for chunk in ask(client, stream=True):
            seen.append(chunk)
    assert len(seen) == 4 and all(c.choices[0].finish_reason is None for c in seen)


def test_cut_mid_stream(fake, client):
    fake.script(Chat(content="A long answer that never ends", cut_after=3))
    seen = []
    with pytest.raises((httpx.RemoteProtocolError, openai.APIConnectionError)):
        for chunk in ask(client, stream=True):
            seen.append(chunk)
    assert len(seen) == 3


@pytest.mark.parametrize("answer, status, exception", [
    ("not_found", 404, openai.NotFoundError),
    ("method_not_allowed", 405, openai.APIStatusError),
    ("not_supported", 400, openai.BadRequestError),
])
def test_no_responses_api(fake, client, answer, status, exception):
    fake.responses_answer = answer
    with pytest.raises(exception) as raised:
        client.responses.create(model="deepseek-chat", input="hi")
    assert raised.value.status_code == status
    if answer == "not_supported":
        assert "does not support the Responses API" in raised.value.message
    assert fake.requests_to("/responses")[0].json["model"] == "deepseek-chat"


def test_no_stored_responses_either(fake):
    assert httpx.get(fake.base_url + "/responses/resp_1").status_code == 404
