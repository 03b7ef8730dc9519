"""Property tests of the translation core: any chat request, any Responses event sequence.

Requests are drawn from a strategy shaped after the spec's CreateChatCompletionRequest (every role
and content-part kind, tools, tool_choice, response_format, limits, stop, n, ...) with random junk
mixed in; event sequences are the recorded real streams, reordered, truncated, duplicated, with
events dropped, fields deleted or given values of the wrong type. Example counts come from the
hypothesis profile: modest by default, ``PROXY_FUZZ_LONG=1`` for long runs.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import realdata
from proxy.errors import InvalidRequest
from proxy.translate import (CompletionBuilder, MappingOptions, Presentation, StreamTranslator, Translation,
                             chat_param, chat_to_responses, restore_reasoning)
from spec_check import check_chat_chunk, check_chat_completion, check_create_response, check_error_body
from strategies import chat_requests, json_values, objects, text

pytestmark = pytest.mark.core  # the pure translation core: `pytest -m core` runs these alone

REMEMBERED = [{"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAAB..."}]
mapping_options = st.builds(
    MappingOptions,
    reasoning_summary=st.sampled_from([None, "auto", "concise", "detailed"]),
    max_n=st.integers(min_value=1, max_value=4),
    require_search_tool=st.booleans(),
    keep_reasoning=st.booleans(),
    reasoning_effort=st.sampled_from([None, "low", "high"]),
)


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(chat=chat_requests, options=mapping_options, remembered=st.booleans())
def test_any_chat_request_maps_to_a_valid_responses_request_or_a_400(chat, options, remembered):
    try:
        translation = chat_to_responses(copy.deepcopy(chat), options)
        # Earlier answers' reasoning, when kept, is put back; the body must stay valid either way.
        translation = restore_reasoning(translation, {key: REMEMBERED for key in translation.provenance.memory_keys}
                                        if remembered else {})
    except InvalidRequest as exc:
        assert exc.status == 400
        assert isinstance(exc.message, str) and exc.message
        assert exc.param is None or isinstance(exc.param, str)
        check_error_body(exc.body())
        return
    assert isinstance(translation, Translation)
    check_create_response(translation.upstream.body)
    orjson.dumps(translation.upstream.body)  # what is sent upstream must encode
    assert 1 <= translation.answer.n <= options.max_n
    assert all(isinstance(name, str) for name in (*translation.dropped, *translation.adjusted))
    assert_errors_name_places_the_client_sent(translation)


def assert_errors_name_places_the_client_sent(translation: Translation) -> None:
    """Wherever in the Responses request an upstream's error points, the chat path it is given leads into the
    request the client sent: all of it when only a part was mapped, all but a last field otherwise (a field
    the proxy filled with a default), and never to the same name."""
    for path in places_in(translation.upstream.body):
        mapped = chat_param(path, translation)
        if mapped is None:
            continue
        chat_path, whole = mapped
        parts = [int(index) if index else name
                 for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", chat_path)]
        assert chat_path != path and reaches(translation.provenance.request, parts[:-1] if whole else parts), (path, mapped)


def places_in(value: Any, path: str = "") -> list[str]:
    """Every place in a JSON value, as an error's ``param`` names it (``input[2].content[0].text``)."""
    found = [path] if path else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += places_in(child, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += places_in(child, f"{path}[{index}]")
    return found


def reaches(value: Any, parts: list[str | int]) -> bool:
    for part in parts:
        if isinstance(part, int) and isinstance(value, list) and part < len(value):
            value = value[part]
        elif isinstance(part, str) and isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return False
    return True


# ---------------------------------------------------------------- streams

STREAMS = [recording.events for recording in realdata.recordings(api="responses", kind="stream")]


@st.composite
def mangled_streams(draw) -> list[Any]:
    """A recorded stream, reordered, cut, with repeats, missing events, missing or junk fields."""
    events = copy.deepcopy(draw(st.sampled_from(STREAMS)))
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        if not events:
            break
        action = draw(st.sampled_from(["swap", "truncate", "duplicate", "drop", "delete_field", "junk_field",
                                       "junk_nested", "insert_unknown"]))
        index = draw(st.integers(min_value=0, max_value=len(events) - 1))
        event = events[index]
        if action == "swap":
            other = draw(st.integers(min_value=0, max_value=len(events) - 1))
            events[index], events[other] = events[other], events[index]
        elif action == "truncate":
            events = events[:index]
        elif action == "duplicate":
            events.insert(draw(st.integers(min_value=0, max_value=len(events))), copy.deepcopy(event))
        elif action == "drop":
            del events[index]
        elif action in ("delete_field", "junk_field") and isinstance(event, dict) and event:
            key = draw(st.sampled_from(sorted(event)))
            if action == "delete_field":
                del event[key]
            else:
                event[key] = draw(json_values)
        elif action == "junk_nested" and isinstance(event, dict):
            target = draw(st.sampled_from([value for value in event.values() if isinstance(value, dict)] or [event]))
            if target:
                target[draw(st.sampled_from(sorted(target)))] = draw(json_values)
        elif action == "insert_unknown":
            events.insert(index, draw(st.one_of(json_values, objects({"type": text}, {"delta": text}))))
    return events


presentations = st.builds(Presentation, reasoning=st.sampled_from(["reasoning_content", "think", "none"]),
                          stop=st.sampled_from([(), ("the",), ("\n", "END")]), sources_in_content=st.booleans(),
                          progress=st.booleans())


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(events=mangled_streams(), presentation=presentations, include_usage=st.booleans())
def test_any_event_sequence_gives_valid_chunks_and_one_ending(events, presentation, include_usage):
    translator = StreamTranslator("o3-pro", include_usage=include_usage, presentation=presentation)
    frames = translator.start()
    for event in events:
        frames += translator.feed(event)
    frames += translator.finish()
    errors = [frame for frame in frames if "error" in frame]
    finishes = [frame for frame in frames for choice in frame.get("choices") or () if choice.get("finish_reason")]
    assert len(errors) + len(finishes) == 1, (errors, finishes)
    for frame in frames:
        if "error" in frame:
            check_error_body(frame)
            assert frame is frames[-1]
        else:
            check_chat_chunk(frame)
        orjson.dumps(frame)
    assert translator.done
    assert (translator.error is None) == (not errors)
    if not errors:
        builder = CompletionBuilder()  # the non-streamed answer folds the same chunks
        builder.add(frames)
        check_chat_completion(builder.build([translator]))
