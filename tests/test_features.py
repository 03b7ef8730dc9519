"""What chat users see: reasoning display, variants, web search, deep research, stop, n, logprobs, continuity."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

import proxy.models

from chunks import fold
from conftest import sdk
from fake_upstream import (
    Reply,
    Respond,
    Stream,
    build_response,
    error_body,
    function_call_item,
    message_item,
    reasoning_item,
    stream_events,
    url_citation,
    web_search_call_item,
)
from spec_check import check_chat_chunk, check_chat_completion, check_create_response

MESSAGES = [{"role": "user", "content": "Why is the sky blue?"}]
THOUGHT = [reasoning_item(["Rayleigh scattering.", "Shorter wavelengths scatter more."]),
           message_item("Because of Rayleigh scattering.")]


def streamed(url, body, headers=None):
    response = httpx.post(url + "/v1/chat/completions", json={**body, "stream": True}, headers=headers, timeout=30)
    payloads = [line[6:] for line in response.text.split("\n") if line.startswith("data: ")]
    assert payloads[-1] == "[DONE]", response.text
    frames = [json.loads(p) for p in payloads[:-1]]
    for frame in frames:
        check_chat_chunk(frame)
    return response, frames


def completed(url, body, headers=None):
    response = httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    check_chat_completion(response.json())
    return response.json()


# --- reasoning display ---------------------------------------------------------------


def test_summaries_are_requested_and_shown_as_reasoning_content(proxy_url, fake):
    fake.script(Respond(output=THOUGHT))
    message = completed(proxy_url, {"model": "o3-pro", "messages": MESSAGES})["choices"][0]["message"]
    assert message["reasoning_content"] == "Rayleigh scattering.\n\nShorter wavelengths scatter more."
    assert fake.requests_to("/responses")[0].json["reasoning"]["summary"] == "auto"


@pytest.mark.parametrize("stream", [False, True])
def test_think_mode_by_header(proxy_url, fake, stream):
    fake.script(Respond(output=THOUGHT))
    headers = {"x-proxy-reasoning-output": "think"}
    body = {"model": "o3-pro", "messages": MESSAGES}
    if stream:
        _, frames = streamed(proxy_url, body, headers)
        assert frames[1]["choices"][0]["delta"] == {"content": "<think>\n"}  # the opening tag comes at once
        message = fold(frames)["message"]
    else:
        message = completed(proxy_url, body, headers)["choices"][0]["message"]
    assert message["content"] == ("<think>\nRayleigh scattering.\n\nShorter wavelengths scatter more.\n</think>\n\n"
                                  "Because of Rayleigh scattering.")
    assert "reasoning_content" not in message


def test_think_mode_leaves_no_empty_block_in_a_whole_answer(proxy_url, fake):
    """Tool calls after reasoning without a summary: the opened think block stayed empty, and is left out."""
    fake.script(Respond(output=[reasoning_item([]), function_call_item("lookup", {}, call_id="call_t")]))
    message = completed(proxy_url, {"model": "o3-pro", "messages": MESSAGES, "tools": [
        {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]},
        {"x-proxy-reasoning-output": "think"})["choices"][0]["message"]
    assert message["content"] is None and message["tool_calls"][0]["id"] == "call_t"
    fake.script(Respond(output=[reasoning_item([]), message_item("Hello.")]))
    message = completed(proxy_url, {"model": "o3-pro", "messages": MESSAGES},
                        {"x-proxy-reasoning-output": "think"})["choices"][0]["message"]
    assert message["content"] == "Hello."


def test_none_mode_by_config(make_proxy, fake):
    fake.script(Respond(output=THOUGHT))
    with make_proxy(reasoning={"output": "none"}) as url:
        message = completed(url, {"model": "o3-pro", "messages": MESSAGES})["choices"][0]["message"]
    assert message["content"] == "Because of Rayleigh scattering." and "reasoning_content" not in message


def test_summary_off_by_config(make_proxy, fake):
    with make_proxy(reasoning={"summary": "off"}) as url:
        completed(url, {"model": "o3-pro", "messages": MESSAGES})
    assert "summary" not in fake.requests_to("/responses")[0].json.get("reasoning", {})


def test_bad_reasoning_output_header_is_400(proxy_url, fake):
    response = httpx.post(proxy_url + "/v1/chat/completions", json={"model": "o3-pro", "messages": MESSAGES},
                          headers={"x-proxy-reasoning-output": "loud"}, timeout=30)
    assert response.status_code == 400 and response.json()["error"]["param"] == "x-proxy-reasoning-output"


def test_unverified_organization_gets_answers_without_summaries(make_proxy, fake):
    fake.script(Reply(status=400, json=error_body(
        "Your organization must be verified to generate reasoning summaries. Please go to: "
        "https://platform.openai.com/settings/organization/general and click on Verify Organization.",
        param="reasoning.summary", code="unsupported_value")))
    with make_proxy() as url:
        first = completed(url, {"model": "o3-pro", "messages": MESSAGES})
        second = completed(url, {"model": "o3-pro", "messages": MESSAGES})
    assert first["choices"][0]["message"]["content"].startswith("Echo:")
    assert second["choices"][0]["message"]["content"].startswith("Echo:")
    summaries = [r.json.get("reasoning", {}).get("summary") for r in fake.requests_to("/responses")]
    assert summaries == ["auto", None, None]  # refused once, retried without, remembered


# --- variants ----------------------------------------------------------------------------


def test_effort_suffix_and_alias(make_proxy, fake):
    aliases = {"deep-thinker": {"model": "o3-pro", "reasoning_effort": "high", "params": {"max_tokens": 5000}}}
    with make_proxy(aliases=aliases) as url:
        completed(url, {"model": "o3-pro-low", "messages": MESSAGES})
        completed(url, {"model": "deep-thinker", "messages": MESSAGES})
        completed(url, {"model": "gpt-4o-mini", "messages": MESSAGES})
        listing = httpx.get(url + "/v1/models", timeout=30).json()
    low, alias = fake.requests_to("/responses")
    assert low.json["model"] == "o3-pro" and low.json["reasoning"]["effort"] == "low"
    assert alias.json["model"] == "o3-pro" and alias.json["reasoning"]["effort"] == "high"
    assert alias.json["max_output_tokens"] == 5000
    (chat,) = fake.requests_to("/chat/completions")
    assert chat.json["model"] == "gpt-4o-mini"  # "-mini" is no effort: never cut
    ids = [model["id"] for model in listing["data"]]
    assert {"o3-pro", "o3-pro-low", "o3-pro-medium", "o3-pro-high", "deep-thinker", "gpt-4o"} <= set(ids)
    assert "gpt-4o-high" not in ids
    assert len(ids) == len(set(ids))


def test_effort_variants_are_listed_for_base_names_only(client, fake):
    """A dated snapshot gets none: with an aggregator's hundreds of models, the picker would drown."""
    fake.script(Reply(json={"object": "list", "data": [
        {"id": name, "object": "model", "created": 0, "owned_by": "openai"}
        for name in ("o3-pro", "o3-pro-2025-06-10", "o1-pro-2025-03-19", "gpt-4o")]}))
    ids = [model.id for model in client.models.list()]
    assert ids == ["o3-pro", "o3-pro-2025-06-10", "o1-pro-2025-03-19", "gpt-4o",
                   "o3-pro-low", "o3-pro-medium", "o3-pro-high"]


def test_a_stream_names_the_model_as_the_upstream_resolved_it(client, fake):
    """As the non-streamed answer does (and OpenAI, for both): the snapshot the name resolved to."""
    whole = client.chat.completions.create(model="o3-pro", messages=MESSAGES)
    chunks = list(client.chat.completions.create(model="o3-pro", messages=MESSAGES, stream=True,
                                                 stream_options={"include_usage": True}))
    assert whole.model == "o3-pro-2025-06-10"
    assert chunks and {chunk.model for chunk in chunks[1:]} == {"o3-pro-2025-06-10"}
    assert chunks[0].model in ("o3-pro", "o3-pro-2025-06-10")  # sent before the upstream names it


def test_sdk_model_list_shows_variants(client, fake):
    ids = [model.id for model in client.models.list()]
    assert "o3-pro-high" in ids


# --- web search and deep research ---------------------------------------------------------


CITED = [web_search_call_item("sky colour"), message_item(
    "The sky is blue due to Rayleigh scattering.",
    annotations=[url_citation("https://en.wikipedia.org/wiki/Rayleigh_scattering", "Rayleigh scattering", 26, 43)])]


@pytest.mark.parametrize("stream", [False, True])
def test_citations_as_annotations_and_as_a_sources_list(make_proxy, fake, stream):
    body = {"model": "o3-pro", "messages": MESSAGES, "web_search_options": {"search_context_size": "medium"}}
    with make_proxy(web_search={"sources_in_content": True}) as url:
        fake.script(Respond(output=CITED))
        message = fold(streamed(url, body)[1])["message"] if stream else \
            completed(url, body)["choices"][0]["message"]
    assert message["annotations"][0]["url_citation"]["url"] == "https://en.wikipedia.org/wiki/Rayleigh_scattering"
    assert message["content"] == ("The sky is blue due to Rayleigh scattering.\n\nSources:\n"
                                  "1. [Rayleigh scattering](https://en.wikipedia.org/wiki/Rayleigh_scattering)")
    assert fake.requests_to("/responses")[0].json["tools"] == [{"type": "web_search", "search_context_size": "medium"}]


def test_deep_research_gets_a_search_tool_background_mode_and_progress(make_proxy, fake):
    fake.script(Respond(output=[reasoning_item(["Planning the research."]), web_search_call_item("sky colour"),
                                message_item("Report: it is Rayleigh scattering.")]))
    with make_proxy(models={"*deep-research*": {"background": True}}) as url:  # the built-in default
        _, frames = streamed(url, {"model": "o3-deep-research", "messages": MESSAGES})
    request = fake.requests_to("/responses")[0].json
    check_create_response(request)
    assert request["tools"] == [{"type": "web_search_preview"}]
    assert request["background"] is True and request["store"] is True
    message = fold(frames)["message"]
    assert "Searching the web: sky colour" in message["reasoning_content"]
    assert message["content"] == "Report: it is Rayleigh scattering."


# --- stop ------------------------------------------------------------------------------------


LONG = "First line of the answer.\nSTOP-HERE and everything after it costs tokens " + "blah " * 200


def test_stop_in_a_stream_cuts_and_closes_the_upstream(proxy_url, fake):
    fake.script(Stream(events=stream_events(build_response(None, [message_item(LONG)]), text_chunk=3), delay=0.002))
    _, frames = streamed(proxy_url, {"model": "o3-pro", "messages": MESSAGES, "stop": ["STOP-HERE", "never"]})
    folded = fold(frames)
    assert folded["message"]["content"] == "First line of the answer.\n"
    assert folded["finish_reasons"] == ["stop"]
    fake.wait_for_disconnect(timeout=5)
    assert fake.disconnects == 1  # the upstream stream was closed early


def test_stop_without_a_stream(client, fake):
    fake.script(Stream(events=stream_events(build_response(None, [message_item(LONG)]), text_chunk=3), delay=0.002))
    completion = client.chat.completions.create(model="o3-pro", messages=MESSAGES, stop="STOP-HERE")
    assert completion.choices[0].message.content == "First line of the answer.\n"
    assert completion.choices[0].finish_reason == "stop"
    fake.wait_for_disconnect(timeout=5)
    assert fake.disconnects == 1


def test_stop_that_never_matches_changes_nothing(client, fake):
    fake.script(Respond(output=[message_item("Short and sweet.")]))
    completion = client.chat.completions.create(model="o3-pro", messages=MESSAGES, stop=["zzz"])
    assert completion.choices[0].message.content == "Short and sweet."


# --- n ------------------------------------------------------------------------------------------


def test_n_choices_without_a_stream(client, fake):
    fake.script(*[Respond(output=[message_item(f"Answer {i}")]) for i in range(3)])
    completion = client.chat.completions.create(model="o3-pro", messages=MESSAGES, n=3)
    check_chat_completion(completion.model_dump(exclude_unset=True))
    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert sorted(c.message.content for c in completion.choices) == ["Answer 0", "Answer 1", "Answer 2"]
    singles = [build_response({"input": [{"role": "user", "content": MESSAGES[0]["content"]}]},
                              [message_item(f"Answer {i}")])["usage"] for i in range(3)]
    assert completion.usage.completion_tokens == sum(u["output_tokens"] for u in singles)
    assert len(fake.requests_to("/responses")) == 3


def test_n_choices_streamed_interleaved(proxy_url, fake):
    fake.script(*[Stream(events=stream_events(build_response(None, [message_item(f"Choice number {i}")]),
                                              text_chunk=2), delay=0.003) for i in range(3)])
    _, frames = streamed(proxy_url, {"model": "o3-pro", "messages": MESSAGES, "n": 3,
                                     "stream_options": {"include_usage": True}})
    by_index = {}
    order = []
    for frame in frames:
        for choice in frame["choices"]:
            by_index.setdefault(choice["index"], []).append(choice)
            order.append(choice["index"])
    assert sorted(by_index) == [0, 1, 2]
    texts = sorted("".join(c["delta"].get("content") or "" for c in choices) for choices in by_index.values())
    assert texts == ["Choice number 0", "Choice number 1", "Choice number 2"]
    assert all(sum(1 for c in choices if c["finish_reason"]) == 1 for choices in by_index.values())
    switches = sum(1 for a, b in zip(order, order[1:]) if a != b)
    assert switches > 3  # interleaved as they arrived, not one after another
    assert frames[-1]["choices"] == [] and frames[-1]["usage"]["completion_tokens"] > 0


# --- logprobs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_logprobs(client, fake, stream):
    fake.script(Respond(output=[message_item("Blue sky today")]))
    request = fake.requests
    if stream:
        chunks = list(client.chat.completions.create(model="o3-pro", messages=MESSAGES, logprobs=True,
                                                     top_logprobs=2, stream=True))
        tokens = [t for c in chunks if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    else:
        completion = client.chat.completions.create(model="o3-pro", messages=MESSAGES, logprobs=True, top_logprobs=2)
        tokens = completion.choices[0].logprobs.content
    assert "".join(t.token for t in tokens) == "Blue sky today"
    assert all(t.logprob < 0 and len(t.top_logprobs) == 2 for t in tokens)
    sent = [r for r in request if r.path.endswith("/responses")][0].json
    assert sent["include"] == ["message.output_text.logprobs", "reasoning.encrypted_content"] or \
        sent["include"] == ["reasoning.encrypted_content", "message.output_text.logprobs"]
    assert sent["top_logprobs"] == 2


# --- moderation and prompt caching --------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_moderated_completion_reports_its_results(client, fake, stream):
    fake.script(Respond(output=[message_item("Paris.")]))
    moderation = {"model": "omni-moderation-latest", "policy": {"input": {"mode": "block"}, "output": {"mode": "score"}}}
    options = {"model": "o3-pro", "messages": MESSAGES, "moderation": moderation,
               "prompt_cache_options": {"ttl": "30m", "mode": "implicit"}}
    if stream:
        chunks = list(client.chat.completions.create(**options, stream=True, stream_options={"include_usage": True}))
        for chunk in chunks:
            check_chat_chunk(chunk.model_dump(exclude_unset=True))
        assert chunks[-2].usage is not None
        reported = chunks[-1].moderation
        assert chunks[-1].choices == [] and "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Paris."
    else:
        completion = client.chat.completions.create(**options)
        check_chat_completion(completion.model_dump(exclude_unset=True))
        reported = completion.moderation
    assert reported.input.type == "moderation_results" and reported.output.type == "moderation_results"
    assert reported.input.results[0].flagged is False and reported.output.model == "omni-moderation-latest"
    sent = fake.requests_to("/responses")[0].json
    check_create_response(sent)
    assert sent["moderation"] == moderation and sent["prompt_cache_options"] == {"ttl": "30m", "mode": "implicit"}


# --- multi-turn reasoning continuity --------------------------------------------------------------


def test_three_step_tool_loop_carries_the_first_steps_reasoning(client, fake):
    tools = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {
        "a": {"type": "number"}, "b": {"type": "number"}}}}}]
    messages = [{"role": "user", "content": "What is (1+2)+3?"}]

    fake.script(Respond(output=[reasoning_item(["Add 1 and 2 first."]), function_call_item("add", {"a": 1, "b": 2},
                                                                                          call_id="call_one")]))
    first = client.chat.completions.create(model="o3-pro", messages=messages, tools=tools)
    first_reasoning = [i for i in fake.requests_to("/responses")]
    assert "reasoning.encrypted_content" in first_reasoning[0].json["include"]
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": "call_one", "content": "3"}]

    fake.reset()
    fake.script(Respond(output=[reasoning_item(["Now add 3."]), function_call_item("add", {"a": 3, "b": 3},
                                                                                 call_id="call_two")]))
    second = client.chat.completions.create(model="o3-pro", messages=messages, tools=tools)
    second_input = fake.requests_to("/responses")[0].json["input"]
    check_create_response(fake.requests_to("/responses")[0].json)
    step_one = second_input[1]
    assert step_one["type"] == "reasoning" and step_one["encrypted_content"].startswith("gAAAA")
    assert second_input[2]["call_id"] == "call_one"
    messages += [second.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": "call_two", "content": "6"}]

    fake.reset()
    fake.script(Respond(output=[message_item("The answer is 6.")]))
    third = client.chat.completions.create(model="o3-pro", messages=messages, tools=tools)
    assert third.choices[0].message.content == "The answer is 6."
    third_input = fake.requests_to("/responses")[0].json["input"]
    kinds = [item.get("type", "message") for item in third_input]
    assert kinds == ["message", "reasoning", "function_call", "function_call_output",
                     "reasoning", "function_call", "function_call_output"]
    assert third_input[1] == step_one  # the first step's reasoning, again, unchanged


@pytest.mark.parametrize("stream", [False, True])
def test_message_phases_survive_the_chat_history(client, fake, stream):
    """Newer models mark their messages commentary or final answer, and want the marks back."""
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]
    messages = [{"role": "user", "content": "Capital of PotatoLand?"}]
    fake.script(Respond(output=[reasoning_item(["Use the tool."]), {**message_item("Checking. "), "phase": "commentary"},
                                function_call_item("lookup", {}, call_id="call_p")]))
    if stream:
        text = "".join(chunk.choices[0].delta.content or "" for chunk in client.chat.completions.create(
            model="gpt-5.5-pro", messages=messages, tools=tools, stream=True) if chunk.choices)
    else:
        text = client.chat.completions.create(model="gpt-5.5-pro", messages=messages, tools=tools).choices[0].message.content
    assert text == "Checking. "
    messages += [{"role": "assistant", "content": text, "tool_calls": [
                     {"id": "call_p", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]},
                 {"role": "tool", "tool_call_id": "call_p", "content": "Potato City"},
                 {"role": "assistant", "content": "Potato City."}, {"role": "user", "content": "Thanks."}]
    fake.reset()
    fake.script(Respond(output=[message_item("You're welcome.")]))
    client.chat.completions.create(model="gpt-5.5-pro", messages=messages, tools=tools)
    sent = fake.requests_to("/responses")[0].json
    check_create_response(sent)
    assert [(item.get("type"), item.get("phase")) for item in sent["input"] if item.get("role") == "assistant"] == [
        ("message", "commentary"), ("message", None)]  # the last answer was never the upstream's: no phase


def test_unknown_history_degrades_to_plain_history(client, fake):
    client.chat.completions.create(model="o3-pro", messages=[
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_never_seen", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_never_seen", "content": "ok"}])
    kinds = [item.get("type", "message") for item in fake.requests_to("/responses")[0].json["input"]]
    assert kinds == ["message", "function_call", "function_call_output"]


def test_upstream_refusing_encrypted_reasoning_is_remembered(make_proxy, fake):
    fake.script(Reply(status=400, json=error_body(
        "Encrypted content is not supported with this model.", param="include", code="unsupported_parameter")))
    with make_proxy() as url:
        client = sdk(url)
        client.chat.completions.create(model="o3-pro", messages=MESSAGES)
        client.chat.completions.create(model="o3-pro", messages=MESSAGES)
    includes = [r.json.get("include") for r in fake.requests_to("/responses")]
    assert includes == [["reasoning.encrypted_content"], None, None]


def test_openai_sdk_parse_with_a_pydantic_format(client, fake):
    from pydantic import BaseModel

    class Answer(BaseModel):
        colour: str
        reason: str

    fake.script(Respond(output=[message_item('{"colour": "blue", "reason": "Rayleigh scattering"}')]))
    parsed = client.chat.completions.parse(model="o3-pro", messages=MESSAGES, response_format=Answer)
    assert parsed.choices[0].message.parsed == Answer(colour="blue", reason="Rayleigh scattering")
    fmt = fake.requests_to("/responses")[0].json["text"]["format"]
    assert fmt["type"] == "json_schema" and fmt["name"] == "Answer" and fmt["strict"] is True
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="o3-pro", messages=MESSAGES, n=99)


# --- features the upstream refuses --------------------------------------------------------------------

BACKGROUND_ON = {"models": {"o3-pro*": {"background": True}}}
ENCRYPTED = ["reasoning.encrypted_content"]
VERIFY = ("Please go to: https://platform.openai.com/settings/organization/general and click on Verify Organization. "
          "If you just verified, it can take up to 15 minutes for access to propagate.")
UNVERIFIED_STREAM = error_body(f"Your organization must be verified to stream this model. {VERIFY}",
                               param="stream", code="unsupported_value")
UNVERIFIED_SUMMARY = error_body(f"Your organization must be verified to generate reasoning summaries. {VERIFY}",
                                param="reasoning.summary", code="unsupported_value")
NO_ENCRYPTED = error_body("Encrypted content is not supported with this model.", param="include",
                          code="unsupported_parameter")
# What a request carries while the feature is on.
CARRIED = {"background": True, "stream": True, "reasoning.summary": "auto", "include": ENCRYPTED}


def carried(body, param):
    """The value of a feature's parameter in a Responses request (``reasoning.summary`` is nested)."""
    if param == "reasoning.summary":
        return (body.get("reasoning") or {}).get("summary")
    return body.get(param)


def streamed_text(client, model="o3-pro"):
    chunks = list(client.chat.completions.create(model=model, messages=MESSAGES, stream=True))
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.mark.parametrize("param, error", [
    ("background", error_body("Unknown parameter: 'background'.", param="background", code="unknown_parameter")),
    ("background", error_body("Unsupported parameter: 'background' is not supported with this model.")),
    ("stream", UNVERIFIED_STREAM),
    ("stream", error_body("Unsupported value: 'stream' does not support true with this model. Supported values are: "
                          "false.", param="stream", code="unsupported_value")),
    ("stream", error_body("Unknown parameter: 'stream'.")),
    ("reasoning.summary", error_body("'reasoning.summary' is not supported with this model.")),
    ("include", NO_ENCRYPTED),
    ("include", error_body("Unrecognized request argument supplied: include")),
], ids=lambda value: value if isinstance(value, str) else "")
def test_a_refused_parameter_is_left_out_and_remembered(make_proxy, fake, param, error):
    fake.script(Reply(status=400, json=error))
    with make_proxy(**BACKGROUND_ON) as url:
        client = sdk(url)
        assert streamed_text(client).startswith("Echo:")
        assert streamed_text(client).startswith("Echo:")
    sent = [carried(r.json, param) for r in fake.requests_to("/responses")]
    assert sent == [CARRIED[param], None, None]  # refused, asked again without it, remembered


@pytest.mark.parametrize("model, error", [
    ("o3-pro", error_body("Invalid value for 'reasoning.effort': 'max' cannot stream summaries.",
                          param="reasoning.effort", code="invalid_value")),
    ("o3-pro", error_body("Item 'rs_1' of type 'reasoning' was provided without its required following item.",
                          param="input")),
    ("o3-pro", error_body("Unsupported parameter: 'stream_options' is not supported with reasoning models.")),
    ("o3-pro", error_body("Invalid 'include[0]': encrypted reasoning is not available in the background.",
                          param="include[0]")),
    ("o3-pro", error_body("The reasoning stream failed; background jobs are paused. Try again later.")),
    # The client chose the model's name, and the upstream echoes it: it says nothing about the features.
    ("o3-pro 'stream' is not supported", error_body("The model `o3-pro 'stream' is not supported` does not exist.")),
], ids=lambda value: "" if isinstance(value, dict) else value)
def test_an_unrelated_400_is_relayed_and_teaches_nothing(make_proxy, fake, model, error):
    fake.script(Reply(status=400, json=error))
    with make_proxy(**BACKGROUND_ON) as url:
        client = sdk(url)
        with pytest.raises(openai.BadRequestError) as relayed:
            streamed_text(client, model)
        # as the upstream said it, but for the parameter's chat name (see tests/test_error_params.py)
        assert relayed.value.body == error["error"] | ({"param": "messages"} if error["error"]["param"] == "input" else {})
        assert streamed_text(client, model).startswith("Echo:")
    first, second = fake.requests_to("/responses")  # asked once, not again without a feature
    assert [carried(second.json, param) for param in CARRIED] == list(CARRIED.values())


@pytest.mark.parametrize("param, refusal", [
    ("stream", UNVERIFIED_STREAM), ("reasoning.summary", UNVERIFIED_SUMMARY), ("include", NO_ENCRYPTED)])
def test_a_refusal_whose_retry_fails_teaches_nothing(make_proxy, fake, param, refusal):
    failure = error_body("Invalid 'input': too long.", param="input")
    fake.script(Reply(status=400, json=refusal), Reply(status=400, json=failure))
    with make_proxy() as url:
        client = sdk(url)
        with pytest.raises(openai.BadRequestError) as failed:
            streamed_text(client)
        # the retry's error, not the refusal (naming the chat parameter, see tests/test_error_params.py)
        assert failed.value.body == failure["error"] | {"message": "Invalid 'messages': too long.", "param": "messages"}
        assert streamed_text(client).startswith("Echo:")
    sent = [carried(r.json, param) for r in fake.requests_to("/responses")]
    assert sent == [CARRIED[param], None, CARRIED[param]]


def test_a_retry_may_meet_another_refusal_and_both_are_remembered(make_proxy, fake):
    fake.script(Reply(status=400, json=error_body("Unknown parameter: 'background'.", param="background")),
                Reply(status=400, json=UNVERIFIED_STREAM))
    with make_proxy(**BACKGROUND_ON) as url:
        client = sdk(url)
        assert streamed_text(client).startswith("Echo:")
        assert streamed_text(client).startswith("Echo:")
    sent = [(r.json.get("background"), r.json.get("stream")) for r in fake.requests_to("/responses")]
    assert sent == [(True, True), (None, True), (None, None), (None, None)]


def test_a_refused_summary_the_client_asked_for_is_relayed(make_proxy, fake):
    fake.script(Reply(status=400, json=UNVERIFIED_SUMMARY))
    with make_proxy() as url:
        client = sdk(url)
        with pytest.raises(openai.BadRequestError) as relayed:
            client.chat.completions.create(model="o3-pro", messages=MESSAGES,
                                           extra_body={"reasoning": {"summary": "detailed"}})
        assert relayed.value.body == UNVERIFIED_SUMMARY["error"]
        client.chat.completions.create(model="o3-pro", messages=MESSAGES)
    summaries = [carried(r.json, "reasoning.summary") for r in fake.requests_to("/responses")]
    assert summaries == ["detailed", "auto"]  # not asked again without it, and not remembered


def test_refusals_are_remembered_for_a_bounded_number_of_models(make_proxy, fake, monkeypatch):
    """Model names come from clients: an upstream that takes any name must not grow the memory without end."""
    monkeypatch.setattr(proxy.models, "MODELS_REMEMBERED", 2)
    answer = Respond(output=[message_item("Blue.")])
    models = ["o3-pro", "o3-pro-2025-06-10", "o3-pro-third"]
    with make_proxy() as url:
        client = sdk(url)
        for model in models:
            fake.script(Reply(status=400, json=UNVERIFIED_STREAM), answer)
            assert streamed_text(client, model) == "Blue."
        fake.script(Reply(status=400, json=UNVERIFIED_STREAM), answer)
        assert streamed_text(client, models[2]) == "Blue."  # not remembered: refused, and sent again
        for model in models[:2]:
            fake.script(answer)
            assert streamed_text(client, model) == "Blue."  # remembered: sent whole at once
    assert [r.json.get("stream") for r in fake.requests_to("/responses")] == [True, None] * 4 + [None, None]


def test_refusals_for_a_long_model_name_are_not_remembered(make_proxy, fake):
    model = "o3-pro-" + "x" * 300
    answer = Respond(output=[message_item("Blue.")])
    fake.script(Reply(status=400, json=UNVERIFIED_STREAM), answer, Reply(status=400, json=UNVERIFIED_STREAM), answer)
    with make_proxy() as url:
        client = sdk(url)
        assert streamed_text(client, model) == "Blue."
        assert streamed_text(client, model) == "Blue."
    assert [r.json.get("stream") for r in fake.requests_to("/responses")] == [True, None, True, None]
