"""Kept reasoning: the in-process store, the Redis store, and replicas sharing it."""

from __future__ import annotations

import asyncio

import fakeredis
import openai

import realdata
from conftest import CLIENT_KEY, proxy_config
from fake_upstream import Respond, build_response, function_call_item, message_item, reasoning_item
from proxy.memory import LocalStore, RedisStore, ReasoningMemory, memory_scope
from proxy.translate import MappingOptions, chat_to_responses, kept_reasoning, responses_to_chat, restore_reasoning
from servers import running_proxy
from spec_check import check_create_response

TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]


def answer_with_reasoning(call_id=None, text=None):
    output = [reasoning_item(["Thinking."])]
    output.append(function_call_item("lookup", {}, call_id=call_id) if call_id else message_item(text))
    return build_response({"include": ["reasoning.encrypted_content"]}, output)


def test_keys_and_items_of_an_answer():
    keys, items = kept_reasoning(answer_with_reasoning(call_id="call_7"))
    assert keys == ["call_7"]
    assert [item["type"] for item in items] == ["reasoning"] and items[0]["encrypted_content"].startswith("gAAAA")
    assert kept_reasoning(build_response(None, [message_item("no reasoning kept")])) == ([], [])


def recorded_answer(n):
    recording = realdata.get(f"pydantic-ai/test_openai_responses_phase_streamed_on_part_start#{n}")
    return recording.request, next(e for e in recording.events if e["type"] == "response.completed")["response"]


def test_phases_come_back_as_the_model_marked_them():
    """gpt-5.5's first turn (reasoning, a commentary message, a tool call), replayed by a chat client, reaches
    the upstream as the Responses-native client that recorded it sent its second turn."""
    first_request, answer = recorded_answer(1)
    keys, kept = kept_reasoning(answer)
    assert kept[-1] == {"type": "message_phase", "phase": "commentary", "length": 52}
    message = responses_to_chat(answer)["choices"][0]["message"]
    history = [{"role": "system", "content": first_request["instructions"]},
               {"role": "user", "content": "What is the capital of PotatoLand?"},
               {"role": "assistant", "content": message["content"], "tool_calls": message["tool_calls"]},
               {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "Potato City"}]
    translation = chat_to_responses({"model": "gpt-5.5", "messages": history}, MappingOptions(keep_reasoning=True))
    translation = restore_reasoning(translation, {key: kept for key in keys})
    check_create_response(translation.upstream.body)
    sent, native = translation.upstream.body["input"], recorded_answer(2)[0]["input"]
    assert [(item.get("type"), item.get("role"), item.get("phase")) for item in sent] == [
        (None, "user", None), ("reasoning", None, None), ("message", "assistant", "commentary"),
        ("function_call", None, None), ("function_call_output", None, None)]
    # The same reasoning item (its encrypted content is sealed anew in each event that carries it).
    assert sent[1]["id"] == native[1]["id"] and sent[1]["encrypted_content"].startswith("gAAAA")
    said = answer["output"][1]["content"][0]["text"]  # (the cassette stores the request with plain quotes)
    assert sent[2]["content"][0]["text"] == said and len(said) == len(native[2]["content"][0]["text"])
    assert native[2]["phase"] == "commentary"
    assert sent[3]["call_id"] == native[3]["call_id"] and sent[4] == native[4]


def test_phases_split_joined_text_back_and_leave_changed_text_alone():
    answer = build_response({"include": ["reasoning.encrypted_content"]}, [
        reasoning_item(["Thinking."]), {**message_item("Let me see. "), "phase": "commentary"},
        {**message_item("It is 4."), "phase": "final_answer"}])
    keys, kept = kept_reasoning(answer)

    def replayed(text):
        translation = chat_to_responses({"model": "gpt-5.5", "messages": [
            {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": text},
            {"role": "user", "content": "Thanks."}]}, MappingOptions(keep_reasoning=True))
        translation = restore_reasoning(translation, {key: kept for key in keys})
        return [(item.get("phase"), item["content"][0]["text"]) for item in translation.upstream.body["input"]
                if item.get("role") == "assistant"]

    assert replayed("Let me see. It is 4.") == [("commentary", "Let me see. "), ("final_answer", "It is 4.")]
    # A client in think mode sends its think block back: the restored reasoning stands in for it.
    assert replayed("<think>\nThinking.\n</think>\n\nLet me see. It is 4.") == replayed("Let me see. It is 4.")
    # Without every message marked, nothing is kept but the reasoning.
    unmarked = build_response({"include": ["reasoning.encrypted_content"]},
                              [reasoning_item(["Thinking."]), message_item("It is 4.")])
    assert [item["type"] for item in kept_reasoning(unmarked)[1]] == ["reasoning"]


CALLER = ({"authorization": "Bearer pk-one"}, "default", "o3-pro")
SCOPE = memory_scope(*CALLER)


async def test_local_memory_is_bounded_and_expires():
    store = LocalStore(max_entries=2, ttl=0.2)
    memory = ReasoningMemory(store, *CALLER)
    for n in range(3):
        await memory.remember(answer_with_reasoning(call_id=f"call_{n}"))
    assert len(store) == 2
    assert set(await memory.fetch(["call_0", "call_1", "call_2"])) == {"call_1", "call_2"}
    await asyncio.sleep(0.25)
    assert await memory.fetch(["call_1", "call_2"]) == {}


async def test_redis_memory_round_trip_and_expiry():
    client = fakeredis.FakeAsyncRedis()
    memory = ReasoningMemory(RedisStore(client, ttl=60), *CALLER)
    await memory.remember(answer_with_reasoning(text="Plain answer."))
    keys, items = kept_reasoning(answer_with_reasoning(text="Plain answer."))
    found = await memory.fetch(keys + ["missing"])
    assert list(found) == keys and found[keys[0]][0]["type"] == "reasoning"
    assert 0 < await client.ttl(RedisStore.PREFIX + SCOPE + keys[0]) <= 60


async def test_what_is_kept_for_one_scope_is_not_found_from_another():
    store = LocalStore()
    await ReasoningMemory(store, *CALLER).remember(answer_with_reasoning(text="Sure, I can help with that."))
    keys, _ = kept_reasoning(answer_with_reasoning(text="Sure, I can help with that."))
    others = [({"authorization": "Bearer pk-two"}, "default", "o3-pro"),
              ({"authorization": "Bearer pk-one", "openai-organization": "org-b"}, "default", "o3-pro"),
              ({"authorization": "Bearer pk-one"}, "second", "o3-pro"),
              ({"authorization": "Bearer pk-one"}, "default", "o1-pro")]
    assert len({memory_scope(*caller) for caller in others} | {SCOPE}) == 5
    for caller in others:
        assert await ReasoningMemory(store, *caller).fetch(keys) == {}
    assert list(await ReasoningMemory(store, *CALLER).fetch(keys)) == keys
    assert memory_scope({"authorization": "Bearer pk-one"}, "default", "O3-Pro") == SCOPE  # model names: any case


async def test_redis_that_is_down_costs_continuity_not_the_answer():
    class Down:
        async def mget(self, keys):
            raise ConnectionError("redis is down")

        def pipeline(self, transaction=False):
            raise ConnectionError("redis is down")

    memory = ReasoningMemory(RedisStore(Down(), ttl=60), *CALLER)
    assert await memory.fetch(["call_1"]) == {}
    await memory.remember(answer_with_reasoning(call_id="call_1"))  # logged, not raised


def test_replicas_share_kept_reasoning_through_redis(fake_server):
    fake = fake_server
    fake.reset()
    shared = fakeredis.FakeServer()

    def use_redis(app):
        app.state.proxy.reasoning_store = RedisStore(fakeredis.FakeAsyncRedis(server=shared), ttl=60)

    config = proxy_config(fake.base_url)
    with running_proxy(config, use_redis) as first, running_proxy(config, use_redis) as second:
        fake.script(Respond(output=[reasoning_item(["Look it up."]), function_call_item("lookup", {}, call_id="call_r")]))
        step = openai.OpenAI(base_url=first + "/v1", api_key=CLIENT_KEY, max_retries=0).chat.completions.create(
            model="o3-pro", messages=[{"role": "user", "content": "q"}], tools=TOOLS)
        fake.reset()
        openai.OpenAI(base_url=second + "/v1", api_key=CLIENT_KEY, max_retries=0).chat.completions.create(
            model="o3-pro", tools=TOOLS, messages=[
                {"role": "user", "content": "q"}, step.choices[0].message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": "call_r", "content": "found"}])
    items = fake.requests_to("/responses")[0].json["input"]
    assert [item.get("type", "message") for item in items] == ["message", "reasoning", "function_call",
                                                               "function_call_output"]


def plain_turn(fake, url, key, messages, answer, model="o3-pro"):
    """One chat turn whose answer carries reasoning; returns the input the upstream received and the reasoning's id."""
    fake.reset()
    reasoning = reasoning_item([f"Reasoning behind {answer!r}."])
    fake.script(Respond(output=[reasoning, message_item(answer)]))
    completion = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0).chat.completions.create(
        model=model, messages=messages)
    assert completion.choices[0].message.content == answer
    return fake.requests_to("/responses")[0].json["input"], reasoning["id"]


def reasoning_ids(items):
    return [item["id"] for item in items if item.get("type") == "reasoning"]


def test_one_callers_reasoning_never_goes_upstream_with_anothers_request(fake_server):
    """Kept reasoning is found only by the same proxy key, for the same model, however alike the answers."""
    fake, keys = fake_server, ["pk-memory-alpha", "pk-memory-beta"]
    with running_proxy(proxy_config(fake.base_url, server={"api_keys": keys})) as url:
        history = [{"role": "user", "content": "Can you help?"}]
        _, kept = plain_turn(fake, url, keys[0], history, "Sure, I can help with that.")
        history += [{"role": "assistant", "content": "Sure, I can help with that."},
                    {"role": "user", "content": "Go on."}]
        assert reasoning_ids(plain_turn(fake, url, keys[1], history, "Next.")[0]) == []
        assert reasoning_ids(plain_turn(fake, url, keys[0], history, "Next.", model="o1-pro")[0]) == []
        assert reasoning_ids(plain_turn(fake, url, keys[0], history, "Next.")[0]) == [kept]


def test_an_answer_given_twice_gets_its_reasoning_once(fake_server):
    """The same text twice in one history: the kept reasoning goes before the latest one only, never twice
    (the upstream refuses an input with a duplicated item id)."""
    fake = fake_server
    with running_proxy(proxy_config(fake.base_url)) as url:
        history = [{"role": "user", "content": "Do it."}]
        plain_turn(fake, url, CLIENT_KEY, history, "Done.")
        history += [{"role": "assistant", "content": "Done."}, {"role": "user", "content": "Again."}]
        _, latest = plain_turn(fake, url, CLIENT_KEY, history, "Done.")
        history += [{"role": "assistant", "content": "Done."}, {"role": "user", "content": "Thanks."}]
        sent, _ = plain_turn(fake, url, CLIENT_KEY, history, "You're welcome.")
    assert reasoning_ids(sent) == [latest]
    kinds = [item.get("type", "message") for item in sent]
    assert kinds == ["message", "message", "message", "reasoning", "message", "message"]
