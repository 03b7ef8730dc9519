"""The OpenAI Agents SDK against the proxy: an agent with one function tool, run, then run streamed.

Runs in the Agents SDK's own venv (.agents-venv, see tests/clients/requirements-agents.in), so it imports
nothing from the tests. Usage: agents_client.py <proxy base URL with /v1> <scenario data as JSON>; prints
what each run saw as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI


def what_the_run_did(result: Any) -> dict[str, Any]:
    calls = [item.raw_item for item in result.new_items if item.type == "tool_call_item"]
    outputs = [item.raw_item for item in result.new_items if item.type == "tool_call_output_item"]
    return {"final_output": result.final_output,
            "calls": [{"call_id": call.call_id, "name": call.name, "arguments": call.arguments} for call in calls],
            "outputs": [{"call_id": output["call_id"], "output": output["output"]} for output in outputs]}


async def main(base_url: str, data: dict[str, Any]) -> dict[str, Any]:
    set_tracing_disabled(True)
    client = AsyncOpenAI(base_url=base_url, api_key="client-key", max_retries=0, timeout=30)

    @function_tool(name_override=data["tool"]["name"], description_override=data["tool"]["description"])
    def weather(city: str) -> str:
        return json.dumps({"city": city, "temp_c": data["temperatures"][city]})

    agent = Agent(name="Forecaster", instructions="Answer from the weather tool's data.", tools=[weather],
                  model=OpenAIResponsesModel(model=data["model"], openai_client=client))
    seen = {"run": what_the_run_did(await Runner.run(agent, data["tool_question"]))}
    streamed = Runner.run_streamed(agent, data["tool_question"])
    deltas = ""
    async for event in streamed.stream_events():
        if event.type == "raw_response_event" and event.data.type == "response.output_text.delta":
            deltas += event.data.delta
    seen["run_streamed"] = what_the_run_did(streamed) | {"text_deltas": deltas}
    return seen


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))))
