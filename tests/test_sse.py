"""The SSE reader: framing rules and events split across network reads."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.translate import (DONE, KEEPALIVE, EventHolder, EventTooLarge, SSEDecoder, encode_data, encode_event,
                             encode_events, encode_frames, event_frames)

pytestmark = pytest.mark.core  # the pure translation core: `pytest -m core` runs these alone

STREAM = (b"event: response.created\ndata: {\"a\":1}\n\n"
          b": keep-alive\n\n"
          b"data: line one\ndata: line two\n\n"
          b"event: x\r\ndata:no-space\r\n\r\n"
          b"data: [DONE]\n\n")
EXPECTED = [("response.created", b'{"a":1}'), (None, b"line one\nline two"), ("x", b"no-space"), (None, b"[DONE]")]


def decode(chunks):
    decoder = SSEDecoder()
    return [event for chunk in chunks for event in decoder.feed(chunk)] + decoder.close()


def test_whole_stream():
    assert decode([STREAM]) == EXPECTED


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_any_split_gives_the_same_events(size):
    assert decode([STREAM[i:i + size] for i in range(0, len(STREAM), size)]) == EXPECTED


def test_cr_only_line_ends_and_split_crlf():
    assert decode([b"data: a\r", b"\n\r", b"\ndata: b\r\r"]) == [(None, b"a"), (None, b"b")]


def test_an_event_in_many_pieces_comes_out_once_its_blank_line_arrives():
    decoder = SSEDecoder()
    big = b"x" * 100_000
    pieces = [b"event: big\r\ndata: ", *(big[i:i + 1000] for i in range(0, len(big), 1000)), b"\r\n"]
    assert [decoder.feed(piece) for piece in pieces] == [[]] * len(pieces)
    assert decoder.feed(b"\r\ndata: next\n") == [("big", big)]
    assert decoder.close() == [(None, b"next")]


def test_a_blank_line_split_between_two_pieces_ends_the_event():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a") == [] and decoder.feed(b"b\n") == []
    assert decoder.feed(b"\ndata: c\n") == [(None, b"ab")]
    assert decoder.close() == [(None, b"c")]


def test_an_event_held_past_the_limit_is_an_error():
    decoder = SSEDecoder(max_event=64)
    assert decoder.feed(b"data: " + b"x" * 50) == []
    with pytest.raises(EventTooLarge, match="64 bytes"):
        decoder.feed(b"x" * 20)
    fits = SSEDecoder(max_event=64)
    assert fits.feed(b"data: " + b"x" * 200 + b"\n\n") == [(None, b"x" * 200)]  # a whole event is never held


LINE_ENDS = st.sampled_from([b"\n", b"\r\n", b"\r"])
FIELD_TEXT = st.binary(max_size=40).map(lambda raw: raw.replace(b"\r", b"").replace(b"\n", b""))


@st.composite
def streams(draw):
    """A stream of events (an optional name, data lines, comments) in any line-end style, and what it holds."""
    stream, expected = b"", []
    for _ in range(draw(st.integers(0, 6))):
        name = draw(st.none() | FIELD_TEXT.map(lambda raw: raw.decode("utf-8", "replace").encode()))
        lines = draw(st.lists(FIELD_TEXT, min_size=1, max_size=3))
        end = draw(LINE_ENDS)
        block = b""
        if draw(st.booleans()):
            block += b": comment" + end
        if name is not None:
            block += b"event: " + name + end
        block += b"".join(b"data: " + line + end for line in lines)
        stream += block + end
        expected.append((None if name is None else name.decode(), b"\n".join(lines)))
    return stream, expected


@given(streams(), st.lists(st.integers(0, 10_000), max_size=12))
def test_any_stream_split_anywhere_gives_its_events(stream_and_events, cuts):
    stream, expected = stream_and_events
    points = sorted({cut % (len(stream) + 1) for cut in cuts})
    pieces = [stream[start:end] for start, end in zip([0, *points], [*points, len(stream)])]
    assert decode(pieces) == expected


def test_final_event_without_blank_line_is_flushed():
    assert decode([b"data: tail"]) == [(None, b"tail")]


def test_writer_round_trips_through_reader():
    frames = encode_event("response.created", {"x": "a\nb"}) + encode_data({"y": 1}) + KEEPALIVE + DONE
    assert decode([frames]) == [("response.created", b'{"x":"a\\nb"}'), (None, b'{"y":1}'), (None, b"[DONE]")]


@pytest.mark.parametrize("payloads", [[], [{"y": 1}], [{"a": "x\n\ny"}, {}, {"b": [1, 2]}]])
def test_frames_in_one_piece_are_the_frames_one_by_one(payloads):
    joined = encode_frames(iter(payloads))
    assert joined == b"".join(encode_data(payload) for payload in payloads)
    assert decode([joined]) == [(None, encode_data(payload)[6:-2]) for payload in payloads]


def test_named_event_with_several_data_lines_keeps_them_all():
    assert decode([b"event: x\ndata: a\ndata: b\n\n", b"event: y\ndata: c\n: note\n\n"]) == [("x", b"a\nb"), ("y", b"c")]


def test_extra_blank_lines_between_events_are_skipped():
    assert decode([b"data: a\n\n\n\n", b"\nevent: y\ndata: b\n\n\n"]) == [(None, b"a"), ("y", b"b")]


@pytest.mark.parametrize("data, complete", [
    (b"data: 1\n\ndata: 2\n\n", b"data: 1\n\ndata: 2\n\n"),
    (b"data: 1\n\ndata: {\"half", b"data: 1\n\n"),
    (b"data: 1\r\n\r\ndata: 2\r\n", b"data: 1\r\n\r\n"),
    (b"data: 1\r\rdata: 2", b"data: 1\r\r"),
    (b": keep-alive\n\nevent: x\ndata: 2\n", b": keep-alive\n\n"),
    (b"data: no end yet", b""),
])
def test_the_event_holder_lets_out_what_ends_where_an_event_ends(data, complete):
    holder = EventHolder(limit=1024)
    assert holder.feed(data) == complete and len(holder) == len(data) - len(complete)
    assert holder.flush() == data[len(complete):] and len(holder) == 0


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_the_event_holder_gives_back_a_stream_in_any_pieces_whole_and_in_events(size):
    holder = EventHolder(limit=1024)
    sent = [holder.feed(STREAM[start:start + size]) for start in range(0, len(STREAM), size)]
    assert len(holder) == 0 and b"".join(sent) == STREAM
    assert decode([chunk for chunk in sent if chunk]) == EXPECTED


def test_the_event_holder_lets_an_event_too_large_to_hold_go_out_as_it_comes():
    holder = EventHolder(limit=10)
    assert holder.feed(b"data: 12345") == b"data: 12345"  # 11 bytes held would pass the limit
    assert holder.feed(b"67\n\n") == b"67\n\n"


@pytest.mark.parametrize("events", [[], [{"type": "response.created", "sequence_number": 0}],
                                    [{"type": "response.output_text.delta", "delta": "a\n\nb"}, {"type": "é x"},
                                     {"type": "response.output_text.delta", "delta": ""}]])
def test_named_frames_in_one_piece_or_apart_are_the_frames_one_by_one(events):
    one_by_one = [encode_event(event["type"], event) for event in events]
    assert encode_events(events) == b"".join(one_by_one)
    assert event_frames(events) == one_by_one
    assert decode([encode_events(events)]) == [(event["type"], frame.partition(b"\ndata: ")[2][:-2])
                                                for event, frame in zip(events, one_by_one)]


def test_named_frames_of_many_event_types_are_still_the_frames_one_by_one():
    events = [{"type": f"x.{number}"} for number in range(300)]  # past the number of types whose heads are kept
    assert encode_events(events) == b"".join(encode_event(event["type"], event) for event in events)
    assert event_frames(events[-2:]) == [encode_event(event["type"], event) for event in events[-2:]]
