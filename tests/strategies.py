"""Hypothesis strategies for chat requests, shaped after the spec's CreateChatCompletionRequest.

Well-formed requests cover every role and content-part kind, tools, tool_choice, response_format,
limits, stop, n and the parameters forwarded as given; ``mutated`` puts junk in one to three places.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

# ---------------------------------------------------------------- JSON and junk

_scalars = (st.none() | st.booleans() | st.integers(min_value=-2**63, max_value=2**64 - 1)
            | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
json_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)


def objects(required: dict[str, st.SearchStrategy], optional: dict[str, st.SearchStrategy] | None = None
            ) -> st.SearchStrategy:
    return st.fixed_dictionaries(required, optional=optional or {})


def places(value: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) inside a JSON value, where a mutation can land."""
    found, stack = [], [value]
    while stack:
        node = stack.pop()
        keys = list(node) if isinstance(node, dict) else range(len(node)) if isinstance(node, list) else ()
        for key in keys:
            found.append((node, key))
            stack.append(node[key])
    return found


@st.composite
def mutated(draw, base: st.SearchStrategy) -> Any:
    """A value from ``base`` with one to three places replaced by junk, deleted, or given an unknown key."""
    value = copy.deepcopy(draw(base))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        spots = places(value)
        if not spots:
            break
        container, key = draw(st.sampled_from(spots))
        action = draw(st.sampled_from(["junk", "junk", "delete", "unknown_key"]))
        if action == "junk":
            container[key] = draw(json_values)
        elif action == "delete":
            del container[key]
        elif isinstance(container, dict):
            container[draw(st.text(max_size=12))] = draw(json_values)
    return value


names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_-]{0,20}", fullmatch=True)
text = st.text(max_size=40)
efforts = st.sampled_from(["none", "minimal", "low", "medium", "high", "xhigh"])

# ---------------------------------------------------------------- message content

cache_mark = {"prompt_cache_breakpoint": st.just({"mode": "explicit"})}
text_part = objects({"type": st.sampled_from(["text", "input_text"]), "text": text}, cache_mark)
image_part = objects({"type": st.just("image_url"),
                      "image_url": st.one_of(st.just("https://img.example/b.png"),
                                             objects({"url": st.sampled_from(["https://img.example/a.png",
                                                                              "data:image/png;base64,iVBORw0KGgo="])},
                                                     {"detail": st.sampled_from(["auto", "low", "high"])}))},
                     cache_mark)
file_part = objects({"type": st.just("file"),
                     "file": st.one_of(objects({"file_id": st.just("file-abc123")}),
                                       objects({"file_data": st.just("data:application/pdf;base64,JVBERi0="),
                                                "filename": st.just("a.pdf")}))}, cache_mark)
audio_part = objects({"type": st.just("input_audio"),
                      "input_audio": objects({"data": st.just("UklGRg=="), "format": st.sampled_from(["wav", "mp3"])})})
responses_parts = st.one_of(  # parts some clients send in the Responses form
    objects({"type": st.just("input_image")}, {"image_url": st.just("https://img.example/c.png"),
                                               "file_id": st.just("file-img"),
                                               "detail": st.sampled_from(["auto", "low", "high", "original"]),
                                               **cache_mark}),
    objects({"type": st.just("input_file")}, {"file_id": st.just("file-abc"), "filename": st.just("b.pdf"),
                                              "file_url": st.just("https://files.example/b.pdf"), **cache_mark}),
)
refusal_part = objects({"type": st.just("refusal"), "refusal": text})
user_parts = st.lists(st.one_of(text_part, text_part, image_part, file_part, responses_parts), min_size=1, max_size=3)
assistant_parts = st.lists(st.one_of(text_part, refusal_part), max_size=3)

tool_call = st.one_of(
    objects({"id": names, "type": st.just("function"),
             "function": objects({"name": names, "arguments": st.one_of(st.just('{"q": 1}'), text)})}),
    objects({"id": names, "type": st.just("custom"), "custom": objects({"name": names, "input": text})}),
)

message = st.one_of(
    objects({"role": st.sampled_from(["system", "developer"]), "content": st.one_of(text, st.lists(text_part, max_size=2))},
            {"name": names}),
    objects({"role": st.just("user"), "content": st.one_of(text, user_parts)}, {"name": names}),
    objects({"role": st.just("assistant")},
            {"content": st.one_of(st.none(), text, assistant_parts), "refusal": st.one_of(st.none(), text),
             "tool_calls": st.lists(tool_call, max_size=2), "reasoning_content": text}),
    objects({"role": st.just("tool"), "tool_call_id": names, "content": st.one_of(text, st.lists(text_part, max_size=2))}),
)
legacy_turn = st.tuples(objects({"role": st.just("assistant"), "content": st.none(),
                                 "function_call": objects({"name": names, "arguments": st.just("{}")})}),
                        objects({"role": st.just("function"), "name": names, "content": text}))
messages = st.builds(lambda head, legacy: head + [part for turn in legacy for part in turn],
                     st.lists(message, min_size=1, max_size=5), st.lists(legacy_turn, max_size=1))

# ---------------------------------------------------------------- tools and the rest

schemas = st.one_of(st.just({"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}),
                    st.dictionaries(st.text(max_size=8), json_values, max_size=3))
function = objects({"name": names}, {"description": text, "parameters": schemas, "strict": st.booleans()})
tools = st.lists(st.one_of(
    objects({"type": st.just("function"), "function": function}),
    objects({"type": st.just("custom"), "custom": objects({"name": names}, {
        "description": text, "format": st.one_of(st.just({"type": "text"}), objects({
            "type": st.just("grammar"), "syntax": st.sampled_from(["lark", "regex"]), "definition": text}))})}),
), max_size=3)
tool_choice = st.one_of(
    st.sampled_from(["auto", "none", "required"]),
    objects({"type": st.just("function"), "function": objects({"name": names})}),
    objects({"type": st.just("custom"), "custom": objects({"name": names})}),
    objects({"type": st.just("allowed_tools"),
             "allowed_tools": objects({"mode": st.sampled_from(["auto", "required"]),
                                       "tools": st.lists(objects({"type": st.just("function"),
                                                                  "function": objects({"name": names})}), max_size=2)})}),
)
response_format = st.one_of(
    objects({"type": st.sampled_from(["text", "json_object"])}),
    objects({"type": st.just("json_schema"),
             "json_schema": objects({"name": names}, {"schema": schemas, "strict": st.booleans(), "description": text})}),
)
web_search_options = objects({}, {"search_context_size": st.sampled_from(["low", "medium", "high"]),
                                  "user_location": objects({"type": st.just("approximate"),
                                                            "approximate": objects({}, {"city": text, "country": st.just("US"),
                                                                                        "region": text,
                                                                                        "timezone": st.just("UTC")})})})
token_limits = st.integers(min_value=1, max_value=200_000)

OPTIONAL_FIELDS: dict[str, st.SearchStrategy] = {
    "stream": st.booleans(),
    "stream_options": objects({}, {"include_usage": st.booleans(), "include_obfuscation": st.booleans()}),
    "max_tokens": token_limits,
    "max_completion_tokens": token_limits,
    "reasoning_effort": efforts,
    "reasoning": objects({}, {"effort": efforts, "summary": st.sampled_from(["auto", "concise", "detailed"])}),
    "response_format": response_format,
    "verbosity": st.sampled_from(["low", "medium", "high"]),
    "web_search_options": web_search_options,
    "store": st.booleans(),
    "tools": tools,
    "tool_choice": tool_choice,
    "parallel_tool_calls": st.booleans(),
    "functions": st.lists(function, max_size=2),
    "function_call": st.one_of(st.sampled_from(["auto", "none"]), objects({"name": names})),
    "n": st.integers(min_value=1, max_value=4),
    "stop": st.one_of(text, st.lists(text, max_size=4)),
    "logprobs": st.booleans(),
    "top_logprobs": st.integers(min_value=0, max_value=20),
    "metadata": st.dictionaries(st.text(min_size=1, max_size=64), st.text(max_size=512), max_size=16),
    "service_tier": st.sampled_from(["auto", "default", "flex", "scale", "priority"]),
    "prompt_cache_key": text,
    "prompt_cache_retention": st.sampled_from(["in_memory", "24h"]),
    "prompt_cache_options": objects({}, {"ttl": st.just("30m"), "mode": st.sampled_from(["implicit", "explicit"])}),
    "moderation": st.one_of(st.none(), objects({"model": st.just("omni-moderation-latest")}, {"policy": st.one_of(
        st.none(), objects({}, {side: st.one_of(st.none(), objects({"mode": st.sampled_from(["score", "block"])}))
                                for side in ("input", "output")}))})),
    "safety_identifier": st.text(max_size=64),
    "user": text,
    "temperature": st.floats(min_value=0, max_value=2),
    "top_p": st.floats(min_value=0, max_value=1),
    "presence_penalty": st.floats(min_value=-2, max_value=2),
    "frequency_penalty": st.floats(min_value=-2, max_value=2),
    "logit_bias": st.dictionaries(st.from_regex(r"[0-9]{1,5}", fullmatch=True), st.integers(-100, 100), max_size=2),
    "seed": st.integers(min_value=-2**63, max_value=2**63 - 1),
    "modalities": st.just(["text"]),
    "prediction": objects({"type": st.just("content"), "content": text}),
}

well_formed_requests = st.builds(
    lambda model, fields: {"model": model, **fields},
    model=st.sampled_from(["o3-pro", "gpt-5-pro", "codex-mini-latest", "openai/o3-pro"]),
    fields=st.fixed_dictionaries({"messages": messages}, optional=OPTIONAL_FIELDS),
)
# Half as the spec describes them, half with junk somewhere (including inputs the proxy must refuse:
# audio, unknown roles and part types, out-of-range limits).
chat_requests = st.one_of(well_formed_requests, mutated(well_formed_requests),
                          st.builds(lambda chat, part: {**chat, "messages": chat["messages"] + [
                              {"role": "user", "content": [part]}]}, well_formed_requests, audio_part))
