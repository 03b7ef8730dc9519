"""Request ids, the per-request log line, log redaction, Prometheus metrics and readiness."""

from __future__ import annotations

import io
import json
import logging
import socket
import sys
import time
from contextlib import contextmanager

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import UPSTREAM_KEY, sdk
from fake_upstream import Reply, Respond, Stream, build_response, error_body, message_item, reasoning_item, stream_events
from proxy import logs
from proxy.config import load_config
from proxy.health import Readiness
from proxy.upstream import Upstream
from wire import raw_exchange, status_of, wait_until

MESSAGES = [{"role": "user", "content": "Hi"}]
TEAM_KEY = "pk-team-observed-5b2a"


@contextmanager
def captured_logs(level=logging.INFO, formatter=None):
    """Everything logged, formatted as the proxy formats it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter or logs.JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def access_lines(stream):
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    return [line for line in lines if line["logger"] == "proxy.access"]


def line_for(stream, request_id, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in access_lines(stream):
            if line.get("request_id") == request_id:
                return line
        time.sleep(0.02)
    return None


def metric(text, name, **labels):
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def scrape(url):
    return httpx.get(url + "/metrics", timeout=10).text


# ---------------------------------------------------------------- request id


def test_every_answer_carries_a_request_id(proxy_url, fake):
    first = httpx.post(proxy_url + "/v1/chat/completions", json={"model": "o3-pro", "messages": MESSAGES})
    second = httpx.get(proxy_url + "/healthz")
    assert first.headers["x-request-id"].startswith("req_") and second.headers["x-request-id"].startswith("req_")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@pytest.mark.parametrize("incoming, kept", [("abc-123_X.y:z", True), ("has space", False), ("x" * 129, False),
                                            ("ünïcode", False)])
def test_a_sane_incoming_request_id_is_kept(proxy_url, fake, incoming, kept):
    response = httpx.get(proxy_url + "/healthz", headers={"x-request-id": incoming.encode("utf-8")})
    assert (response.headers["x-request-id"] == incoming) is kept


def test_the_upstreams_request_id_is_kept_apart(proxy_url, fake):
    response = httpx.get(proxy_url + "/v1/models", headers={"x-request-id": "mine-1"})
    assert response.headers.get_list("x-request-id") == ["mine-1"]
    assert response.headers["x-upstream-request-id"].startswith("req_")
    assert fake.requests[0].headers["x-request-id"] == "mine-1"


def upstream_details(headers) -> dict[str, str]:
    return {name: value for name, value in headers.items()
            if name.startswith("x-ratelimit-") or name == "openai-processing-ms"}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_translated_answer_carries_the_upstreams_request_id_and_rate_limits(client, fake, stream):
    with captured_logs() as logged:
        with client.chat.completions.with_streaming_response.create(model="o3-pro", messages=MESSAGES,
                                                                    stream=stream) as response:
            answer = list(response.parse()) if stream else response.parse()
        line = line_for(logged, response.headers["x-request-id"])
    assert answer
    (upstream_id,) = fake.request_ids  # of the answer to POST /responses
    assert response.headers["x-upstream-request-id"] == upstream_id == line["upstream_request_id"]
    assert response.headers["x-request-id"].startswith("req_") and response.headers["x-request-id"] != upstream_id
    (sent,) = fake.answer_headers
    assert len(upstream_details(sent)) == 7 and upstream_details(response.headers) == upstream_details(sent)


@pytest.mark.parametrize("case", ["rejected", "rejected-stream", "failed"])
def test_a_translated_error_carries_the_upstreams_request_id_and_rate_limits(client, fake, case):
    if case == "failed":  # accepted with 200, then the generation failed
        fake.script(Respond(status="failed", error={"code": "server_error", "message": "Model crashed."}))
    else:
        fake.script(Reply(400, json=error_body("Bad thing", param="input", code="bad_thing")))
    with captured_logs() as logged:
        with pytest.raises(openai.APIStatusError) as raised:
            client.chat.completions.create(model="o3-pro", messages=MESSAGES, stream=case == "rejected-stream")
        line = line_for(logged, raised.value.request_id)
    (upstream_id,) = fake.request_ids
    assert raised.value.status_code == (500 if case == "failed" else 400)
    assert raised.value.response.headers["x-upstream-request-id"] == upstream_id == line["upstream_request_id"]
    (sent,) = fake.answer_headers
    assert upstream_details(raised.value.response.headers) == upstream_details(sent)


def test_with_several_choices_the_first_choices_call_names_the_answer(client, fake):
    texts = ("answered first", "answered second")
    fake.script(*(Reply(json=build_response(None, [message_item(text)]), headers={"x-request-id": f"req_{n}"})
                  for n, text in enumerate(texts)))
    response = client.chat.completions.with_raw_response.create(model="o3-pro", messages=MESSAGES, n=2)
    first = next(choice for choice in response.parse().choices if choice.index == 0)
    assert response.headers["x-upstream-request-id"] == f"req_{texts.index(first.message.content)}"
    first_call = fake.answer_headers[texts.index(first.message.content)]
    assert upstream_details(response.headers) == upstream_details(first_call)


# ---------------------------------------------------------------- the request line


def test_one_line_per_request_with_its_fields(proxy_url, fake):
    with captured_logs() as stream:
        translated = httpx.post(proxy_url + "/v1/chat/completions", json={"model": "o3-pro", "messages": MESSAGES})
        passed = httpx.post(proxy_url + "/v1/chat/completions", json={"model": "gpt-4o", "messages": MESSAGES})
        fake.script(Reply(400, json=error_body("Bad thing", param="input", code="bad_thing")))
        failed = httpx.post(proxy_url + "/v1/chat/completions", json={"model": "o3-pro", "messages": MESSAGES})
        httpx.get(proxy_url + "/healthz")
        line = line_for(stream, translated.headers["x-request-id"])
        other = line_for(stream, passed.headers["x-request-id"])
        error = line_for(stream, failed.headers["x-request-id"])
    assert line["message"] == "POST /v1/chat/completions 200"
    assert {key: line[key] for key in ("method", "path", "model", "mode", "status", "upstream", "upstream_status")} == {
        "method": "POST", "path": "/v1/chat/completions", "model": "o3-pro", "mode": "translated", "status": 200,
        "upstream": "default", "upstream_status": 200}
    assert line["prompt_tokens"] > 0 and line["completion_tokens"] > 0
    assert 0 <= line["ttfb"] <= line["duration"]
    assert (other["mode"], other["model"], other["upstream_status"]) == ("passthrough", "gpt-4o", 200)
    assert (error["status"], error["upstream_status"], error["error"]) == (400, 400, "bad_thing")
    assert not [entry for entry in access_lines(stream) if entry["path"] == "/healthz"]


def test_a_streams_line_is_written_when_it_ends(make_proxy, fake):
    events = stream_events(build_response(None, [reasoning_item(["Thinking."]), message_item("Slow answer.")],
                                          usage={"input_tokens": 11, "output_tokens": 22,
                                                 "output_tokens_details": {"reasoning_tokens": 7}}))
    fake.script(Stream(events=events, delay=0.08, heartbeat_pause=0.5))
    with make_proxy(stream={"heartbeat_interval": 0.1}) as url, captured_logs() as stream:
        before = scrape(url)
        body = {"model": "o3-pro", "messages": MESSAGES, "stream": True}
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=30) as response:
            chunks = response.iter_bytes()
            next(chunks)
            request_id = response.headers["x-request-id"]
            during = scrape(url)
            assert line_for(stream, request_id, timeout=0.2) is None
            rest = b"".join(chunks)
        line = line_for(stream, request_id)
        after = scrape(url)
    assert rest.endswith(b"data: [DONE]\n\n")
    assert line["stream"] is True and line["duration"] >= 0.5 and line["ttfb"] < line["duration"]
    assert (line["prompt_tokens"], line["completion_tokens"], line["reasoning_tokens"]) == (11, 22, 7)
    active = {"mode": "translated"}
    assert metric(during, "proxy_active_streams", **active) == metric(before, "proxy_active_streams", **active) + 1
    assert metric(after, "proxy_active_streams", **active) == metric(before, "proxy_active_streams", **active)
    assert metric(after, "proxy_heartbeats_total") >= metric(before, "proxy_heartbeats_total") + 2


def test_a_client_that_leaves_is_logged_and_counted(make_proxy, fake):
    events = stream_events(build_response(None, [message_item("x" * 400)]), text_chunk=4)
    fake.script(Stream(events=events, delay=0.05))
    with make_proxy() as url, captured_logs() as stream:
        before = metric(scrape(url), "proxy_client_disconnects_total", mode="translated")
        body = {"model": "o3-pro", "messages": MESSAGES, "stream": True}
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=30) as response:
            next(response.iter_bytes())
            request_id = response.headers["x-request-id"]
        fake.wait_for_disconnect()
        line = line_for(stream, request_id)
        after = metric(scrape(url), "proxy_client_disconnects_total", mode="translated")
    assert line["client_disconnected"] is True
    assert after == before + 1


def test_keys_never_reach_the_logs(make_proxy, fake):
    """A whole run at DEBUG, in both formats: neither the upstream key nor the client's key is written."""
    for formatter in (logs.JsonFormatter(), logs.TextFormatter()):
        fake.reset()
        with make_proxy(server={"api_keys": [TEAM_KEY]}) as url, captured_logs(logging.DEBUG, formatter) as stream:
            headers = {"authorization": f"Bearer {TEAM_KEY}"}
            leaky = [{"role": "user", "content": f"my keys are {UPSTREAM_KEY} and {TEAM_KEY}"}]
            for model, streamed in (("o3-pro", False), ("o3-pro", True), ("gpt-4o", False), ("gpt-4o", True)):
                httpx.post(url + "/v1/chat/completions", json={"model": model, "messages": leaky, "stream": streamed},
                           headers=headers, timeout=30)
            httpx.get(url + "/v1/models", headers=headers)
            httpx.get(url + "/v1/models", headers={"authorization": "Bearer wrong-key"})
            fake.script(Reply(401, json=error_body(f"Incorrect API key provided: {UPSTREAM_KEY}.")))
            httpx.post(url + "/v1/chat/completions", json={"model": "o3-pro", "messages": MESSAGES}, headers=headers)
            time.sleep(0.2)
            text = stream.getvalue()
        assert text.count("POST /v1/chat/completions") >= 5 and "my keys are" in text  # contents at DEBUG
        assert UPSTREAM_KEY not in text and TEAM_KEY not in text


def test_redaction_covers_registered_keys_and_bearer_tokens():
    logs.register_secrets(["opaque-upstream-token-91"])
    assert logs.redact("key opaque-upstream-token-91 end") == "key *** end"
    assert logs.redact("Authorization: Bearer abc.def") == "Authorization: Bearer ***"
    assert logs.redact("sk-proj-abcdefghijk") == "sk-***"


def test_log_format_follows_the_terminal(monkeypatch):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        for tty, expected in ((False, logs.JsonFormatter), (True, logs.TextFormatter)):
            fake_stderr = io.StringIO()
            fake_stderr.isatty = lambda tty=tty: tty
            monkeypatch.setattr(sys, "stderr", fake_stderr)
            logs.setup_logging("info", "auto")
            assert isinstance(root.handlers[-1].formatter, expected)
            logging.getLogger("proxy.test").info("hello %s", "world", extra={"fields": {"model": "o3-pro"}})
            written = fake_stderr.getvalue()
            if expected is logs.JsonFormatter:
                line = json.loads(written)
                assert (line["message"], line["model"], line["level"]) == ("hello world", "o3-pro", "info")
            else:
                assert "INFO" in written and "proxy.test: hello world model=o3-pro" in written
        logs.setup_logging("warning", "json")
        assert isinstance(root.handlers[-1].formatter, logs.JsonFormatter) and root.level == logging.WARNING
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


@pytest.fixture
def own_logging():
    """Makes the proxy's logging set-up, writing to a string; what it replaced is put back afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level

    def install(log_format):
        logs.setup_logging("info", log_format)
        stream = io.StringIO()
        root.handlers[0].setStream(stream)
        return stream

    yield install
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def served_record():
    return logs.RequestLog(request_id="req_direct", method="POST", path="/v1/chat/completions", model="o3-pro",
                           mode="translated", stream=True, upstream="default", upstream_status=200, status=200,
                           retries=1, ttfb=0.01234, duration=1.5, prompt_tokens=3, completion_tokens=4)


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_the_request_line_written_directly_is_the_line_logging_writes(own_logging, log_format, monkeypatch):
    written = own_logging(log_format)
    access = logging.getLogger("proxy.access")
    records = []
    make_record = access.makeRecord

    def counted(*args, **kwargs):
        records.append(make_record(*args, **kwargs))
        return records[-1]

    monkeypatch.setattr(access, "makeRecord", counted)
    logs.write(served_record())  # the proxy's handler alone: written without a LogRecord
    assert records == []
    access.addFilter(lambda record: True)  # a filter: through the logging module, as any line
    try:
        logs.write(served_record())
    finally:
        access.filters.clear()
    assert len(records) == 1
    direct, logged = written.getvalue().splitlines()
    assert direct.split("Z", 1)[1] == logged.split("Z", 1)[1]  # the same line, but for its time
    if log_format == "json":
        assert json.loads(direct) | {"time": None} == json.loads(logged) | {"time": None}
        assert json.loads(direct)["retries"] == 1 and json.loads(direct)["ttfb"] == 0.012


def test_other_handlers_and_filters_still_see_the_request_line(own_logging):
    written = own_logging("json")
    access = logging.getLogger("proxy.access")
    with captured_logs() as other:  # a second handler on the root logger
        logs.write(served_record())
    assert [line["request_id"] for line in access_lines(other)] == ["req_direct"]
    access.addFilter(lambda record: False)
    try:
        logs.write(served_record())
    finally:
        access.filters.clear()
    logs.write(served_record(), logging.DEBUG)  # below the level set
    assert len(written.getvalue().splitlines()) == 1  # only the first line, before the filter
    own = logging.getLogger().handlers[0]
    own.addFilter(lambda record: False)  # a filter on the proxy's own handler
    logs.write(served_record())
    own.filters.clear()
    logging.getLogger().removeHandler(own)  # the proxy's handler no longer configured
    logs.write(served_record())
    assert len(written.getvalue().splitlines()) == 1


def test_request_log_outside_a_request_is_a_harmless_throwaway():
    logs.current().fallback = "gpt-4o"
    assert logs.current().fallback is None
    record = logs.RequestLog()
    record.count_usage({"prompt_tokens": 3, "completion_tokens": 4,
                        "completion_tokens_details": {"reasoning_tokens": 2}})
    assert (record.prompt_tokens, record.completion_tokens, record.reasoning_tokens) == (3, 4, 2)


FORGED = "1999-01-01T00:00:00.000Z INFO    proxy.access: POST /v1/admin 200"


def test_clients_cannot_forge_lines_in_the_text_format(proxy_url, fake):
    """A path with %0d%0a, a model name with a line break or with spaces: one line each, nothing on a line of its
    own, no field that is not the proxy's."""
    with captured_logs(formatter=logs.TextFormatter()) as stream:
        path = "/v1/x%0d%0a" + FORGED.replace(" ", "%20")
        head, _ = raw_exchange(proxy_url, f"GET {path} HTTP/1.1\r\nHost: proxy.local\r\nConnection: close\r\n\r\n"
                               .encode())
        assert status_of(head) == 404
        for model in (f"gpt-4o\n{FORGED}", f"gpt-4o\r{FORGED}", "gpt-4o\u2028x\x1b[2J", "gpt-4o status=500 mode=x"):
            answer = httpx.post(proxy_url + "/v1/chat/completions", json={"model": model, "messages": MESSAGES})
            assert answer.status_code == 200
        wait_until(lambda: stream.getvalue().count("proxy.access:") >= 5)
        written = stream.getvalue()
    lines = written.split("\n")
    assert not [line for line in lines if line.startswith("1999") or "\r" in line or "\u2028" in line or "\x1b" in line]
    assert sum(FORGED in line for line in lines) == 3 and 'path="/v1/x\\r\\n1999-01-01' in written
    assert f"GET {path} 404".lower() in written.lower() and 'model="gpt-4o\\n1999-01-01' in written  # the path as it was sent
    assert 'model="gpt-4o\\u2028x\\x1b[2J"' in written
    assert 'model="gpt-4o status=500 mode=x"' in written


@pytest.mark.parametrize("formatter", [logs.JsonFormatter(), logs.TextFormatter()])
def test_a_megabyte_model_name_makes_no_megabyte_line(make_proxy, fake, formatter):
    """Its request line, and the warning naming it (an upstream's error that repeats it, then a fallback)."""
    model = "m" * 1_000_000
    body = {"model": model, "messages": "not a list"}
    fake.script(Reply(404, json=error_body(f"The model `{model}` does not exist or you do not have access to it.",
                                           code="model_not_found")))
    with make_proxy(models={"*": {"fallback": "gpt-4o"}}) as url, captured_logs(formatter=formatter) as stream:
        answer = httpx.post(url + "/v1/chat/completions", json=body, timeout=30)
        request_id = answer.headers["x-request-id"]
        wait_until(lambda: request_id in stream.getvalue())
        written = stream.getvalue()
    assert answer.status_code == 400 and "serving the request with fallback model gpt-4o" in written
    assert len(written) < 10 * logs.LOGGED_CHARS
    assert f"{'m' * logs.LOGGED_CHARS}...[{1_000_000 - logs.LOGGED_CHARS} more characters]" in written


def test_log_values_are_clipped_one_by_one():
    record = logging.LogRecord("proxy.x", logging.WARNING, "", 0, "model %s failed (%s); fallback %s", (
        "m" * 5000, "x" * 10, "gpt-4o"), None)
    message = json.loads(logs.JsonFormatter().format(record))["message"]
    assert message == f"model {'m' * logs.LOGGED_CHARS}...[4000 more characters] failed (xxxxxxxxxx); fallback gpt-4o"
    unbounded = logging.LogRecord("proxy.x", logging.WARNING, "", 0, "y" * 50_000, None, None)
    assert len(json.loads(logs.JsonFormatter().format(unbounded))["message"]) < logs.MESSAGE_CHARS + 50


# ---------------------------------------------------------------- pass-through answers that break off

PASSED = "gpt-4o"


def chat_frames(*pieces):
    """A passed-through chat stream's frames, one per piece of content."""
    return [b"data: " + json.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": PASSED,
                                    "choices": [{"index": 0, "delta": {"content": piece}, "logprobs": None,
                                                 "finish_reason": None}]}).encode() + b"\n\n" for piece in pieces]


@contextmanager
def server_errors():
    """What uvicorn itself logs (its logger does not reach the root); start the server first."""
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def warnings_for(stream, request_id):
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    return [line for line in lines if line["level"] in ("warning", "error") and line.get("request_id") == request_id
            and line["logger"] != "proxy.access"]


@pytest.mark.parametrize("case, code", [("cut", "upstream_disconnected"), ("cut-mid-event", "upstream_disconnected"),
                                        ("silent", "idle_timeout")])
def test_a_passed_through_event_stream_that_breaks_off_ends_with_an_error_event(make_proxy, fake, case, code):
    frames = chat_frames("One", "Two", "Three") + [b"data: [DONE]\n\n"]
    broken = {"cut": Stream(raw=frames, cut_after=2),
              # the half event is held back: the client gets no JSON it cannot parse before the error
              "cut-mid-event": Stream(raw=frames[:2] + [frames[2][:25]], cut_after=3),
              "silent": Stream(raw=frames, heartbeat_pause=30)}[case]
    body = {"model": PASSED, "messages": MESSAGES, "stream": True}
    # The model's idle timeout bounds the silence, neither the upstream's nor the first-byte timeout.
    with make_proxy(upstream={"idle_timeout": 60, "first_byte_timeout": 60}, models={PASSED: {"idle_timeout": 0.3}}) \
            as url, captured_logs() as logged, server_errors() as uvicorn_said:
        before = scrape(url)
        fake.script(broken)
        started = time.monotonic()
        response = httpx.post(url + "/v1/chat/completions", json=body, timeout=30)  # read to a clean end
        took = time.monotonic() - started
        fake.script(broken)
        with pytest.raises(openai.APIError) as raised:
            list(sdk(url).chat.completions.create(**body))
        line = line_for(logged, response.headers["x-request-id"])
        after = scrape(url)
    relayed = b"".join(frames[:2])
    assert response.content.startswith(relayed) and response.content.endswith(b"\n\n")
    (event,) = response.content[len(relayed):].removesuffix(b"\n\n").split(b"\n\n")
    error = json.loads(event.removeprefix(b"data: "))["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == code
    assert raised.value.message == error["message"] and raised.value.code == code
    if case == "silent":
        assert "0.3 s (idle timeout)" in error["message"] and took < 5
    (warning,) = warnings_for(logged, response.headers["x-request-id"])
    assert warning["level"] == "warning" and error["message"] in warning["message"]
    assert "POST /v1/chat/completions" in warning["message"]
    assert (line["mode"], line["status"], line["error"]) == ("passthrough", 200, code)
    errors = {"mode": "passthrough", "code": code}
    assert metric(after, "proxy_request_errors_total", **errors) == metric(before, "proxy_request_errors_total", **errors) + 2
    assert uvicorn_said == []
    wait_until(lambda: fake.active == 0, 5, "the upstream connection to be closed")


def test_a_passed_through_event_stream_is_relayed_whole_even_when_its_last_event_never_ends(make_proxy, fake):
    frames = chat_frames("One", "Two")
    frames[1] = frames[1][:30] + frames[1][30:].removesuffix(b"\n\n")  # the upstream ends without the blank line
    fake.script(Stream(raw=[frames[0], frames[1][:30], frames[1][30:]]))
    with make_proxy() as url, captured_logs() as logged:
        response = httpx.post(url + "/v1/chat/completions", json={"model": PASSED, "messages": MESSAGES, "stream": True},
                              timeout=30)
    assert response.content == b"".join(frames)
    assert warnings_for(logged, response.headers["x-request-id"]) == []


def test_a_passed_through_stream_may_pause_longer_than_the_first_byte_timeout(make_proxy, fake):
    frames = chat_frames("One", "Two", "Three") + [b"data: [DONE]\n\n"]
    fake.script(Stream(raw=frames, heartbeat_pause=0.8))
    with make_proxy(upstream={"first_byte_timeout": 0.3, "idle_timeout": 5}) as url:
        response = httpx.post(url + "/v1/chat/completions", json={"model": PASSED, "messages": MESSAGES, "stream": True},
                              timeout=30)
    assert response.content == b"".join(frames)


def test_a_passed_through_body_cut_mid_way_stays_cut_with_one_line_of_explanation(make_proxy, fake):
    """Its length was announced with its head: it cannot be repaired, the client must see it incomplete."""
    answer = json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "choices": []}).encode()
    fake.script(Stream(raw=[answer[:20], answer[20:]], cut_after=1, content_type="application/json",
                       headers={"content-length": str(len(answer))}))
    with make_proxy() as url, captured_logs() as logged, server_errors() as uvicorn_said:
        before = scrape(url)
        received = b""
        with pytest.raises(httpx.RemoteProtocolError):
            with httpx.stream("POST", url + "/v1/chat/completions", json={"model": PASSED, "messages": MESSAGES},
                              timeout=30) as response:
                for chunk in response.iter_raw():
                    received += chunk
        line = line_for(logged, response.headers["x-request-id"])
        after = scrape(url)
    assert received == answer[:20] and response.headers["content-length"] == str(len(answer))
    (warning,) = warnings_for(logged, response.headers["x-request-id"])
    assert "broke off after 20 bytes" in warning["message"] and "exception" not in warning
    assert line["error"] == "upstream_disconnected"
    errors = {"mode": "passthrough", "code": "upstream_disconnected"}
    assert metric(after, "proxy_request_errors_total", **errors) == metric(before, "proxy_request_errors_total", **errors) + 1
    # uvicorn says the answer was left incomplete, in one line without a stack trace.
    assert len(uvicorn_said) <= 1 and all(record.exc_info is None for record in uvicorn_said)
    assert "Traceback" not in logged.getvalue()


# ---------------------------------------------------------------- metrics


def test_metrics_after_a_translated_and_a_passed_through_request(make_proxy, fake):
    with make_proxy() as url:
        before = scrape(url)
        translated = sdk(url).chat.completions.create(model="o3-pro", messages=MESSAGES)
        sdk(url).chat.completions.create(model="gpt-4o", messages=MESSAGES)
        after = scrape(url)
    assert translated.usage.prompt_tokens > 0

    def grew(name, by=1.0, **labels):
        assert metric(after, name, **labels) == pytest.approx(metric(before, name, **labels) + by), (name, labels)

    grew("proxy_requests_total", model="o3-pro", mode="translated", status="200")
    grew("proxy_requests_total", model="gpt-4o", mode="passthrough", status="200")
    grew("proxy_tokens_total", by=translated.usage.prompt_tokens, model="o3-pro", kind="prompt")
    grew("proxy_tokens_total", by=translated.usage.completion_tokens, model="o3-pro", kind="completion")
    grew("proxy_request_duration_seconds_count", mode="translated")
    grew("proxy_time_to_first_byte_seconds_count", mode="passthrough")
    grew("proxy_upstream_latency_seconds_count", by=2, upstream="default")
    grew("proxy_upstream_responses_total", by=2, upstream="default", status="200")
    families = {family.name for family in text_string_to_metric_families(after)}
    assert {"proxy_upstream_retries", "proxy_fallbacks", "proxy_background_jobs", "proxy_client_disconnects",
            "proxy_heartbeats", "proxy_active_streams", "proxy_upstream_key_rests"} <= families


def test_megabyte_model_names_do_not_grow_the_metrics_page(make_proxy, fake):
    """Three requests with 1 MB model names, each refused with a 400: counted as model "other"."""
    with make_proxy() as url:
        before = scrape(url)
        for letter in "abc":
            answer = httpx.post(url + "/v1/chat/completions", timeout=30,
                                json={"model": letter * 1_000_000, "messages": "not a list"})
            assert answer.status_code == 400
        after = scrape(url)
    assert len(after) - len(before) < 5000
    other = {"model": "other", "mode": "passthrough", "status": "400"}
    assert metric(after, "proxy_requests_total", **other) == metric(before, "proxy_requests_total", **other) + 3


def test_label_values_are_bounded_in_number_and_length():
    from proxy.metrics import Labels

    label = Labels(most=3, chars=10)
    assert [label(name) for name in ("a", "b", "x" * 11, "c", "d", "a", None)] == \
        ["a", "b", "other", "c", "other", "a", "none"]


# ---------------------------------------------------------------- readiness


def closed_port_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


@pytest.mark.parametrize("check", ["connect", "models"])
def test_ready_when_the_upstream_answers(make_proxy, fake, check):
    with make_proxy(server={"readiness_check": check}) as url:
        response = httpx.get(url + "/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "check": check, "upstreams": {"default": "ok"}}


@pytest.mark.parametrize("check", ["connect", "models"])
def test_not_ready_when_the_upstream_is_down(make_proxy, check):
    with make_proxy(closed_port_url(), server={"readiness_check": check}) as url:
        response = httpx.get(url + "/readyz")
        alive = httpx.get(url + "/healthz")
    assert response.status_code == 503 and alive.status_code == 200
    assert response.json()["status"] == "not ready" and response.json()["upstreams"]["default"] != "ok"


def test_readiness_check_can_be_off(make_proxy):
    with make_proxy(closed_port_url(), server={"readiness_check": "none"}) as url:
        assert httpx.get(url + "/readyz").status_code == 200


async def test_readiness_is_cached_and_a_refused_key_is_not_ready(fake):
    fake.script(Reply(401, json=error_body("Incorrect API key provided.")))
    config = load_config(env={"OPENAI_API_KEY": "sk-revoked", "OPENAI_BASE_URL": fake.base_url}).upstream
    upstream = Upstream(config)
    try:
        readiness = Readiness([upstream], "models", cache_seconds=60)
        ready, details = await readiness.status()
        assert not ready and "refused the proxy's key" in details["default"]
        await readiness.status()
        assert [r.path for r in fake.requests] == ["/v1/models"]
    finally:
        await upstream.aclose()


def test_tallied_counts_and_observations_reach_the_series_as_if_made_one_by_one():
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

    from proxy import metrics

    def series(registry):
        counter = Counter("t_requests", "doc", ["mode"], registry=registry)
        histogram = Histogram("t_seconds", "doc", ["mode"], buckets=(0.05, 1, 60), registry=registry)
        unlabelled = Counter("t_beats", "doc", registry=registry)
        gauge = Gauge("t_active", "doc", ["mode"], registry=registry)
        return counter, histogram, unlabelled, gauge

    values = [0.0, 0.05, 0.051, 0.9, 1.0, 59.0, 61.0, 3600.0, 0.01]
    direct, tallied = CollectorRegistry(), CollectorRegistry()
    counter, histogram, unlabelled, gauge = series(direct)
    for value in values:
        counter.labels("translated").inc(2)
        histogram.labels("translated").observe(value)
        unlabelled.inc()
        gauge.labels("translated").inc()
    gauge.labels("translated").dec()
    counter, histogram, unlabelled, gauge = series(tallied)
    for value in values:
        metrics.count(counter, "translated", amount=2)
        metrics.measure(histogram, "translated", value=value)
        metrics.count(unlabelled)
        metrics.count(gauge, "translated")
    metrics.count(gauge, "translated", amount=-1)
    assert "t_seconds_count" not in generate_latest(tallied).decode().replace("# TYPE", "")  # not yet added
    metrics.flush()
    metrics.flush()  # nothing twice

    def text(registry):
        return "\n".join(line for line in generate_latest(registry).decode().splitlines() if "_created" not in line)

    assert text(tallied) == text(direct)
    assert 't_seconds_bucket{le="0.05",mode="translated"} 3.0' in text(tallied)
    assert 't_active{mode="translated"} 8.0' in text(tallied) and "t_beats_total 9.0" in text(tallied)


def test_finished_requests_tallied_together_reach_the_series_as_if_counted_one_by_one(monkeypatch):
    from prometheus_client import REGISTRY

    from proxy import metrics

    records = [
        logs.RequestLog(model="t-tally", mode="translated", status=200, upstream="a", duration=0.02, ttfb=0.01,
                        prompt_tokens=12, completion_tokens=30, reasoning_tokens=10),
        logs.RequestLog(model="t-tally", mode="translated", status=200, upstream="a", duration=0.3, ttfb=0.2,
                        prompt_tokens=5, completion_tokens=7),
        logs.RequestLog(model="t-tally", mode="translated", status=502, upstream="a", retries=2, error="t_tally_down",
                        duration=61.0),
        logs.RequestLog(model="t-tally", mode="passthrough", status=200, fallback="t-tally-fallback",
                        client_disconnected=True, ttfb=0.5, duration=2.0),
        logs.RequestLog(model=None, mode=None, status=None),
    ]
    names = ("proxy_requests", "proxy_request_errors", "proxy_request_duration_seconds",
             "proxy_time_to_first_byte_seconds", "proxy_tokens", "proxy_upstream_retries", "proxy_fallbacks",
             "proxy_client_disconnects")

    def samples():
        metrics.flush()
        return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in REGISTRY.collect() if family.name in names for sample in family.samples
                if not sample.name.endswith("_created")}

    def added(tallied):
        monkeypatch.setattr(metrics, "_TALLIED", tallied)
        before = samples()
        for record in records:
            metrics.observe(record)
        after = samples()
        # Rounded: a sum of seconds added to what earlier tests left differs in its last bits.
        return {key: round(value - before.get(key, 0), 9) for key, value in after.items()
                if value != before.get(key, 0)}

    one_by_one = added(False)
    assert one_by_one[("proxy_requests_total", (("mode", "translated"), ("model", "t-tally"), ("status", "200")))] == 2
    assert one_by_one[("proxy_tokens_total", (("kind", "prompt"), ("model", "t-tally")))] == 17
    assert one_by_one[("proxy_upstream_retries_total", (("upstream", "a"),))] == 2
    assert added(True) == one_by_one


def test_log_times_are_utc_to_the_millisecond_across_seconds():
    from datetime import datetime, timezone

    for created in (1764000000.9996, 1764000001.0, 1764000061.25, 1764000000.5):
        record = logging.LogRecord("proxy.access", logging.INFO, "", 0, "x", None, None)
        record.created = created
        expected = datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="milliseconds")
        assert json.loads(logs.JsonFormatter().format(record))["time"] == expected.replace("+00:00", "Z")
