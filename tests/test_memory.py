"""Kept reasoning: the in-process store, the Redis store, and replicas sharing it."""

from __future__ import annotations

import asyncio

import fakeredis
import openai

from conftest import CLIENT_KEY, proxy_config
from fake_upstream import Respond, build_response, function_call_item, message_item, reasoning_item
from proxy.memory import LocalMemory, RedisMemory, kept_reasoning
from servers import running_proxy

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


async def test_local_memory_is_bounded_and_expires():
    memory = LocalMemory(max_entries=2, ttl=0.2)
    for n in range(3):
        await memory.remember(answer_with_reasoning(call_id=f"call_{n}"))
    assert len(memory) == 2
    assert set(await memory.fetch(["call_0", "call_1", "call_2"])) == {"call_1", "call_2"}
    await asyncio.sleep(0.25)
    assert await memory.fetch(["call_1", "call_2"]) == {}


async def test_redis_memory_round_trip_and_expiry():
    client = fakeredis.FakeAsyncRedis()
    memory = RedisMemory(client, ttl=60)
    await memory.remember(answer_with_reasoning(text="Plain answer."))
    keys, items = kept_reasoning(answer_with_reasoning(text="Plain answer."))
    found = await memory.fetch(keys + ["missing"])
    assert list(found) == keys and found[keys[0]][0]["type"] == "reasoning"
    assert 0 < await client.ttl(RedisMemory.PREFIX + keys[0]) <= 60


async def test_redis_that_is_down_costs_continuity_not_the_answer():
    class Down:
        async def mget(self, keys):
            raise ConnectionError("redis is down")

        def pipeline(self, transaction=False):
            raise ConnectionError("redis is down")

    memory = RedisMemory(Down(), ttl=60)
    assert await memory.fetch(["call_1"]) == {}
    await memory.remember(answer_with_reasoning(call_id="call_1"))  # logged, not raised


def test_replicas_share_kept_reasoning_through_redis(fake_server):
    fake = fake_server
    fake.reset()
    shared = fakeredis.FakeServer()

    def use_redis(app):
        app.state.proxy.memory = RedisMemory(fakeredis.FakeAsyncRedis(server=shared), ttl=60)

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
