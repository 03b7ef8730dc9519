"""The recorded-traffic loader finds and parses every real recording correctly.

Other tests replay these recordings as upstream answers, so a parsing slip
(a lost event, two streams merged, a gzip body left undecoded) would silently
weaken them.
"""

from collections import Counter

import pytest

import realdata
from realdata import FIXTURES, NOTABLE, TERMINAL_EVENTS, get, paired_conversations, recordings


def _first_user_text(request: dict) -> str:
    items = request.get("messages") or request.get("input")
    for item in items:
        if item.get("role") == "user":
            content = item["content"]
            if isinstance(content, list):
                return "".join(p.get("text", "") for p in content)
            return content
    raise AssertionError("no user message")


def test_every_fixture_file_yields_recordings():
    files = {p.relative_to(FIXTURES).as_posix() for p in FIXTURES.glob("*/*") if p.is_file()}
    assert len(files) >= 80
    assert files == {r.source for r in recordings()}


def test_every_fixture_file_is_credited_in_sources():
    sources = (FIXTURES / "SOURCES.md").read_text("utf-8")
    for path in FIXTURES.glob("*/*"):
        assert f"### `{path.relative_to(FIXTURES).as_posix()}`" in sources


def test_counts_per_api_and_kind():
    counts = Counter((r.api, r.kind) for r in recordings())
    assert counts[("responses", "stream")] > 15
    assert counts[("responses", "body")] > 15
    assert counts[("responses", "error")] >= 5
    assert counts[("chat", "stream")] > 15
    assert counts[("chat", "body")] >= 10
    assert counts[("chat", "error")] >= 3
    assert len(recordings(api="chat", kind="stream")) == counts[("chat", "stream")]
    assert len(recordings()) == sum(counts.values())


def test_names_are_unique_and_resolvable():
    names = [r.name for r in recordings()]
    assert len(names) == len(set(names))
    assert get(names[0]) is recordings()[0]
    with pytest.raises(KeyError):
        get("nope/missing#1")


@pytest.mark.parametrize("role,name", sorted(NOTABLE.items()))
def test_notable_recordings_exist(role, name):
    rec = get(name)
    assert rec.kind == ("error" if "error" in role else role.rsplit("_", 1)[1])
    assert rec.api == ("chat" if role.startswith("chat_") else "responses")


def test_responses_streams_run_from_created_to_one_terminal_event():
    for rec in recordings(api="responses", kind="stream"):
        types = rec.event_types
        assert types[0] == "response.created", rec.name
        assert types[-1] in TERMINAL_EVENTS, rec.name
        assert sum(t in TERMINAL_EVENTS for t in types) == 1, rec.name
        assert types.count("response.created") == 1, rec.name


def test_sequence_numbers_are_consecutive_within_each_stream():
    for rec in recordings(api="responses", kind="stream"):
        seq = [e.get("sequence_number") for e in rec.events]
        if seq[0] is None:  # early-2025 recordings predate sequence numbers
            assert all(s is None for s in seq), rec.name
            continue
        assert seq == list(range(seq[0], seq[0] + len(seq))), rec.name


def test_event_counts_match_the_recorded_files():
    assert len(get("pydantic-ai/test_openai_responses_thinking_part_iter#1").events) == 676
    assert len(get("openai-dotnet/ResponsesTests_StreamingResponsesWithReasoningSummary#1").events) == 1753
    assert len(get("ai/openai-web-search-tool.1.chunks#1").events) == 185
    assert len(get("mirascope/output__test_call_with_thinking__openai_gpt_5_responses__stream#1").events) == 340
    assert len(get("ai/openai-text.chunks#1").events) == 303


def test_concatenated_streams_are_split():
    streams = [get(f"ai/openai-reasoning-encrypted-content.1.chunks#{i}") for i in (1, 2, 3, 4)]
    assert [len(s.events) for s in streams] == [56, 19, 19, 16]
    ids = {s.events[0]["response"]["id"] for s in streams}
    assert len(ids) == 4
    assert "ai/openai-reasoning-encrypted-content.1.chunks#5" not in {r.name for r in recordings()}


def test_refusal_stream():
    types = get(NOTABLE["refusal_stream"]).event_types
    assert "response.refusal.delta" in types
    assert "response.refusal.done" in types
    assert "response.output_text.delta" not in types


def test_web_search_stream_has_citations():
    types = get(NOTABLE["web_search_citations_stream"]).event_types
    assert "response.web_search_call.completed" in types
    added = [e for e in get(NOTABLE["web_search_citations_stream"]).events
             if e["type"] == "response.output_text.annotation.added"]
    assert added and all(e["annotation"]["type"] == "url_citation" for e in added)


def test_reasoning_summary_stream():
    types = get(NOTABLE["reasoning_summary_stream"]).event_types
    assert types.count("response.reasoning_summary_text.delta") == 383
    assert types.count("response.reasoning_summary_part.added") == 4


def test_parallel_function_call_stream():
    events = get(NOTABLE["parallel_function_call_stream"]).events
    calls = [e["item"] for e in events
             if e["type"] == "response.output_item.added" and e["item"]["type"] == "function_call"]
    assert len(calls) == 2
    assert len({c["call_id"] for c in calls}) == 2


def test_incomplete_stream():
    last = get(NOTABLE["incomplete_stream"]).events[-1]
    assert last["type"] == "response.incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_failed_stream():
    rec = get(NOTABLE["failed_stream"])
    assert rec.event_types == ["response.created", "response.in_progress", "error", "response.failed"]
    assert rec.events[2]["error"]["code"] == "insufficient_quota"
    assert rec.events[-1]["response"]["status"] == "failed"


def test_bodies():
    for rec in recordings(api="responses", kind="body"):
        assert rec.body["object"] == "response", rec.name
        assert rec.status == 200, rec.name
    for rec in recordings(api="chat", kind="body"):
        assert rec.body["object"] == "chat.completion", rec.name
    # gzip-compressed cassette bodies are decoded
    assert get("llm-openai-plugin/test_options[options0]#1").body["status"] == "completed"
    output = get(NOTABLE["function_call_body"]).body["output"]
    assert [o["type"] for o in output].count("function_call") == 5


def test_errors():
    errors = recordings(kind="error")
    for rec in errors:
        assert isinstance(rec.body["error"]["message"], str), rec.name
        assert rec.status is None or 400 <= rec.status < 500, rec.name
    statuses = {r.status for r in errors}
    assert {400, 401, 404} <= statuses


def test_chat_streams():
    for rec in recordings(api="chat", kind="stream"):
        assert rec.events, rec.name
        assert all(c["object"] == "chat.completion.chunk" for c in rec.events), rec.name
        assert len({c["id"] for c in rec.events}) == 1, rec.name
        finishes = [ch["finish_reason"] for c in rec.events for ch in c["choices"] if ch.get("finish_reason")]
        assert finishes, rec.name


def test_requests_are_recorded_where_the_format_stores_them():
    bodiless_gets = {"openai-dotnet/ResponsesTests_CanDeleteResponse#2",
                     "openai-dotnet/ResponsesTests_CanDeleteResponse#4"}
    for rec in recordings():
        if rec.source.endswith(".yaml") or rec.source.startswith("openai-dotnet/"):
            assert (rec.request is None) == (rec.name in bodiless_gets), rec.name
        else:  # vercel fixtures and openai-python snapshots store no request
            assert rec.request is None, rec.name
    req = get(NOTABLE["refusal_stream"]).request
    assert req["stream"] is True and req["text"]["format"]["type"] == "json_schema"


def test_paired_conversations():
    pairs = paired_conversations()
    assert len(pairs) >= 8
    for resp, chat in pairs:
        assert (resp.api, chat.api) == ("responses", "chat")
        assert resp.request["model"] == chat.request["model"]
        assert _first_user_text(resp.request) == _first_user_text(chat.request)
        assert (resp.kind == "stream") == (chat.kind == "stream")
    names = {r.name for pair in pairs for r in pair}
    assert NOTABLE["refusal_stream"] in names


def test_parse_sse_skips_done_and_checks_event_names():
    text = 'event: a\ndata: {"type": "a"}\n\ndata: [DONE]\n\n'
    assert realdata.parse_sse(text) == [{"type": "a"}]
    with pytest.raises(ValueError):
        realdata.parse_sse('event: a\ndata: {"type": "b"}\n\n')
