"""Everything not translated reaches the upstream untouched, streamed both ways."""

from __future__ import annotations

import gzip
import hashlib
import json
import socket
import zlib

import httpx
import openai
import pytest
from starlette.requests import Request

import proxy.app
from conftest import UPSTREAM_KEY
from fake_upstream import SPEECH_BYTES, Reply, Respond, error_body, message_item
from proxy.errors import ProxyError
from proxy.passthrough import limited_body, read_body
from proxy.streaming import ClientGone
from proxy.upstream import _decode
from wire import raw_exchange, status_of


def test_chat_for_other_models_is_byte_identical(proxy_url, fake):
    raw = b'{"model":"gpt-4o",  "messages":[{"role":"user","content":"hi"}], "temperature":0.2, "x_custom":[1,2]}'
    response = httpx.post(proxy_url + "/v1/chat/completions", content=raw, timeout=30,
                          headers={"content-type": "application/json", "authorization": "Bearer client"})
    assert response.status_code == 200
    assert response.headers["x-proxy-mode"] == "passthrough"
    (sent,) = fake.requests_to("/chat/completions")
    assert sent.body == raw
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert response.json()["object"] == "chat.completion"
    assert fake.requests_to("/responses") == []


def test_streamed_chat_for_other_models_passes_through(client, fake):
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hello"}],
                                                 stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None
    assert fake.requests_to("/responses") == []


def test_responses_only_error_is_learned_and_translated(client, fake):
    fake.responses_only.add("brand-new-pro")
    fake.script(Respond(output=[message_item("translated after all")]))
    completion = client.chat.completions.create(model="brand-new-pro", messages=[{"role": "user", "content": "x"}])
    assert completion.choices[0].message.content == "translated after all"
    assert len(fake.requests_to("/chat/completions")) == 1

    fake.requests.clear()
    fake.script(Respond(output=[message_item("again")]))
    again = client.chat.completions.create(model="brand-new-pro", messages=[{"role": "user", "content": "x"}])
    assert again.choices[0].message.content == "again"
    assert fake.requests_to("/chat/completions") == []  # remembered: straight to /responses


def test_a_model_name_echoed_in_an_error_is_not_learned(proxy_url, fake):
    """The client chose the name: an upstream repeating it has not said the model is Responses-only."""
    model = 'gpt-4o "only supported in v1/responses"'
    body = error_body(f"The model `{model}` does not exist or you do not have access to it.", code="model_not_found")
    for _ in range(2):
        fake.script(Reply(status=404, json=body))
        response = httpx.post(proxy_url + "/v1/chat/completions", timeout=30,
                              json={"model": model, "messages": [{"role": "user", "content": "x"}]})
        assert response.status_code == 404 and response.json() == body
    assert len(fake.requests_to("/chat/completions")) == 2 and fake.requests_to("/responses") == []


@pytest.mark.parametrize("model", ["deepseek-chat", "gpt-4o"])
def test_an_unknown_key_echoed_by_the_upstream_reroutes_no_model(proxy_url, fake, model):
    """One caller's key named like the Responses-only wording, repeated in the upstream's "Unrecognized request
    argument" error (OpenAI's and Azure's wording), moves neither that request nor anyone's later ones."""
    key = "only supported in v1/responses"
    body = error_body(f"Unrecognized request argument supplied: {key}")
    fake.script(Reply(status=400, json=body))
    attack = httpx.post(proxy_url + "/v1/chat/completions", timeout=30,
                        json={"model": model, "messages": [{"role": "user", "content": "x"}], key: 1})
    assert attack.status_code == 400 and attack.json() == body
    assert fake.requests_to("/responses") == []
    later = httpx.post(proxy_url + "/v1/chat/completions", timeout=30,
                       json={"model": model, "messages": [{"role": "user", "content": "x"}]})
    assert later.status_code == 200 and later.headers["x-proxy-mode"] == "passthrough"
    assert len(fake.requests_to("/chat/completions")) == 2 and fake.requests_to("/responses") == []


def test_a_responses_only_model_is_learned_only_once_the_responses_api_serves_it(client, fake):
    fake.responses_only.add("brand-new-pro-2")
    missing = error_body("The model `brand-new-pro-2` does not exist or you do not have access to it.",
                         code="model_not_found")
    fake.script(Reply(status=404, json=missing))  # the Responses API does not serve it either
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="brand-new-pro-2", messages=[{"role": "user", "content": "x"}])
    fake.script(Respond(output=[message_item("served")]))
    served = client.chat.completions.create(model="brand-new-pro-2", messages=[{"role": "user", "content": "x"}])
    assert served.choices[0].message.content == "served"
    assert len(fake.requests_to("/chat/completions")) == 2  # not learned after the first: asked as chat again
    fake.requests.clear()
    client.chat.completions.create(model="brand-new-pro-2", messages=[{"role": "user", "content": "x"}])
    assert fake.requests_to("/chat/completions") == []  # learned once served


def test_a_long_responses_only_name_is_translated_but_not_remembered(client, fake):
    model = "brand-new-pro-" + "x" * 300
    fake.responses_only.add(model)
    for _ in range(2):
        fake.script(Respond(output=[message_item("translated")]))
        completion = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
        assert completion.choices[0].message.content == "translated"
    assert len(fake.requests_to("/chat/completions")) == 2  # asked as a chat request each time
    assert len(fake.requests_to("/responses")) == 2


def test_other_chat_errors_are_relayed_unchanged(proxy_url, fake):
    body = error_body("Unsupported value: 'temperature' does not support 3.", param="temperature",
                      code="unsupported_value")
    fake.script(Reply(status=400, json=body))
    response = httpx.post(proxy_url + "/v1/chat/completions", timeout=30, json={
        "model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "temperature": 3})
    assert response.status_code == 400
    assert response.json() == body
    assert fake.requests_to("/responses") == []
    unknown = httpx.get(proxy_url + "/v1/no-such-endpoint", timeout=30)
    assert unknown.status_code == 404
    assert "error" in unknown.json()


@pytest.mark.parametrize("path", ["/v1/models", "/models", "/api/v1/models", "/v1/v1/models"])
def test_models_on_any_path_ending_in_models(proxy_url, fake, path):
    response = httpx.get(proxy_url + path, timeout=30)
    assert response.status_code == 200
    assert any(model["id"] == "o3-pro" for model in response.json()["data"])
    assert fake.requests[-1].path == "/v1/models"


def test_models_with_a_trailing_slash_is_the_same_merged_list(make_proxy, fake):
    aliases = {"deep-thinker": {"model": "o3-pro", "reasoning_effort": "high"}}
    with make_proxy(aliases=aliases) as url:
        plain = httpx.get(url + "/v1/models", timeout=30)
        slashed = httpx.get(url + "/v1/models/", timeout=30)
    assert slashed.status_code == plain.status_code == 200
    assert slashed.json() == plain.json()
    ids = {model["id"] for model in slashed.json()["data"]}
    assert {"o3-pro", "o3-pro-high", "deep-thinker"} <= ids  # the proxy's variants and aliases
    assert [request.path for request in fake.requests] == ["/v1/models", "/v1/models"]


def test_a_compressed_model_list_is_read_and_rewritten(proxy_url, fake):
    """The model list is relayed as the upstream encoded it, but rewritten by the proxy, so it is decoded first."""
    listing = {"object": "list", "data": [{"id": "o3-pro", "object": "model", "created": 1, "owned_by": "system"}]}
    fake.script(Reply(200, body=gzip.compress(json.dumps(listing).encode()), headers={"content-encoding": "gzip"}))
    response = httpx.get(proxy_url + "/v1/models", headers={"accept-encoding": "gzip"}, timeout=30)
    assert response.status_code == 200 and "content-encoding" not in response.headers
    assert response.json()["data"][0]["id"] == "o3-pro"
    assert fake.requests[-1].headers["accept-encoding"] == "gzip"


def test_a_model_list_larger_than_the_proxy_reads_is_502_not_cut(proxy_url, fake, monkeypatch):
    monkeypatch.setattr(proxy.app, "MODEL_LIST_LIMIT", 1000)
    listing = {"object": "list", "data": [{"id": f"model-{i}", "object": "model", "created": 1, "owned_by": "system"}
                                          for i in range(100)]}
    fake.script(Reply(200, body=gzip.compress(json.dumps(listing).encode()), headers={"content-encoding": "gzip"}))
    response = httpx.get(proxy_url + "/v1/models", timeout=30)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "invalid_upstream_response" and "1,000 bytes" in response.text


def test_embeddings_json(proxy_url, fake):
    response = httpx.post(proxy_url + "/v1/embeddings", json={"model": "text-embedding-3-small", "input": "hello"},
                          timeout=30)
    assert response.status_code == 200
    assert len(response.json()["data"][0]["embedding"]) > 0
    assert fake.requests[-1].path == "/v1/embeddings"


def test_multipart_upload_arrives_intact(proxy_url, fake):
    audio = bytes(range(256)) * 4096  # 1 MiB
    response = httpx.post(proxy_url + "/v1/audio/transcriptions", timeout=30,
                          files={"file": ("speech.wav", audio, "audio/wav")}, data={"model": "whisper-1"})
    assert response.status_code == 200, response.text
    echoed = response.json()
    assert echoed["file"]["filename"] == "speech.wav"
    assert echoed["file"]["size"] == len(audio)
    assert echoed["file"]["sha256"] == hashlib.sha256(audio).hexdigest()
    assert echoed["fields"] == {"model": "whisper-1"}


def test_binary_download_is_identical(proxy_url, fake):
    with httpx.stream("POST", proxy_url + "/v1/audio/speech", timeout=30,
                      json={"model": "tts-1", "input": "hello", "voice": "alloy"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("audio/")
        body = b"".join(response.iter_bytes())
    assert body == SPEECH_BYTES


def test_responses_endpoint_itself_passes_through_streamed(proxy_url, fake):
    request = {"model": "o3-pro", "input": "hi", "stream": True}
    with httpx.stream("POST", proxy_url + "/v1/responses", json=request, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    assert "event: response.created" in text and "event: response.completed" in text
    (sent,) = fake.requests_to("/responses")
    assert json.loads(sent.body) == request


def test_query_strings_and_methods_are_kept(proxy_url, fake):
    created = httpx.post(proxy_url + "/v1/responses", json={"model": "o3-pro", "input": "hi", "store": True},
                         timeout=30).json()
    fetched = httpx.get(f"{proxy_url}/v1/responses/{created['id']}?include[]=message.output_text.logprobs",
                        timeout=30)
    assert fetched.status_code == 200 and fetched.json()["id"] == created["id"]
    assert fake.requests[-1].query == {"include[]": "message.output_text.logprobs"}
    deleted = httpx.delete(f"{proxy_url}/v1/responses/{created['id']}", timeout=30)
    assert deleted.status_code == 200
    assert fake.requests[-1].method == "DELETE"


@pytest.mark.parametrize("path", ["/v1/models", "/v1/responses/resp_missing"])
def test_a_get_with_a_body_reaches_the_upstream_with_it(proxy_url, fake, path):
    # Not common, but allowed: the body must be sent, not announced by its length and then withheld.
    answer = httpx.request("GET", proxy_url + path, content=b'{"limit": 5}', timeout=5,
                       headers={"content-type": "application/json", "authorization": "Bearer client"})
    assert answer.status_code == (200 if path == "/v1/models" else 404)
    (sent,) = fake.requests
    assert (sent.method, sent.path, sent.body) == ("GET", path, b'{"limit": 5}')


def test_a_request_without_a_body_is_sent_without_one(proxy_url, fake):
    deleted = httpx.delete(proxy_url + "/v1/responses/resp_missing", timeout=5)
    assert deleted.status_code == 404
    (sent,) = fake.requests
    assert sent.body == b"" and sent.headers.get("content-length", "0") == "0"
    assert "transfer-encoding" not in sent.headers


def test_hop_by_hop_headers_are_not_forwarded(proxy_url, fake):
    httpx.get(proxy_url + "/v1/models", timeout=30, headers={"connection": "keep-alive, x-secret-hop",
                                                           "proxy-authorization": "Basic abc", "x-custom": "kept"})
    headers = fake.requests[-1].headers
    assert headers["x-custom"] == "kept"
    assert "proxy-authorization" not in headers


@pytest.mark.parametrize("model", ["gpt-4o", "o3-pro"], ids=["passed-through", "translated"])
def test_non_ascii_header_values_arrive_as_the_client_sent_them(proxy_url, fake, model):
    """UTF-8 text in a header goes upstream as the same bytes; bytes that are not UTF-8 still go (as Latin-1)."""
    response = httpx.post(proxy_url + "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "Hi"}]},
                          headers={"x-user-name": "Jürgen Müller".encode(), "x-legacy": b"caf\xe9"}, timeout=30)
    assert response.status_code == 200
    headers = fake.requests[-1].headers  # the fake reads header bytes as Latin-1, as servers do
    assert headers["x-user-name"].encode("latin-1") == "Jürgen Müller".encode()
    assert headers["x-legacy"].encode("latin-1") == "café".encode()


@pytest.mark.parametrize("path", ["/v1/../../etc/passwd", "/v1/%2e%2e/secret", "/v1/./models/.."])
def test_path_traversal_is_refused(proxy_url, fake, path):
    host, port = proxy_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:  # httpx would normalise the path itself
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        raw = b""
        while chunk := conn.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert json.loads(body)["error"]["code"] == "invalid_path"
    assert fake.requests == []


@pytest.mark.parametrize("target, body, status", [
    (b"POST /v1/chat/completions", b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}', 200),
    (b"POST /v1/embeddings", b'{"model":"text-embedding-3-small","input":"hello"}', 200),
    (b"GET /v1/models", b"", 200),
    (b"GET /v1/no-such-endpoint", b"", 404),
], ids=["chat", "embeddings", "models", "not-found"])
def test_one_date_and_one_server_header(proxy_url, fake, target, body, status):
    """The HTTP server writes its own Date and Server; the upstream's are not relayed beside them."""
    head, _ = raw_exchange(proxy_url, target + b" HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n"
                                               b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                           % (len(body), body))
    assert status_of(head) == status
    names = [line.split(b":", 1)[0].lower() for line in head.split(b"\r\n")[1:]]
    assert names.count(b"date") == 1 and names.count(b"server") == 1, head
    assert len(fake.requests) == 1


def test_exhausted_retries_relay_the_upstream_answer_with_its_headers(proxy_url, fake):
    body = error_body("Rate limit reached for gpt-4o.", type="rate_limit_error", code="rate_limit_exceeded")
    fake.script(*[Reply(status=429, json=body, headers={"retry-after-ms": "10", "x-ratelimit-remaining-requests": "0"})]
                * 3)
    response = httpx.post(proxy_url + "/v1/chat/completions", timeout=30,
                          json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 429
    assert response.json() == body
    assert response.headers["retry-after-ms"] == "10"
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert len(fake.requests_to("/chat/completions")) == 3


def test_clients_cannot_choose_what_the_operators_key_bills(proxy_url, fake):
    httpx.get(proxy_url + "/v1/models", timeout=30,
              headers={"openai-organization": "org-other", "openai-project": "proj-other"})
    headers = fake.requests[-1].headers
    assert "openai-organization" not in headers and "openai-project" not in headers


def test_without_an_operator_key_the_clients_org_is_kept(make_proxy, fake):
    with make_proxy(upstream={"api_key": None}) as url:
        httpx.get(url + "/v1/models", timeout=30,
                  headers={"authorization": "Bearer sk-user", "openai-organization": "org-mine"})
    assert fake.requests[-1].headers["openai-organization"] == "org-mine"


async def test_a_client_that_leaves_while_uploading_ends_the_body_as_gone():
    messages = iter([{"type": "http.request", "body": b'{"model": ', "more_body": True}, {"type": "http.disconnect"}])

    async def receive():
        return next(messages)

    received = []
    with pytest.raises(ClientGone) as gone:
        async for chunk in limited_body(receive, 1000):
            received.append(chunk)
    assert received == [b'{"model": '] and gone.value.status == 499


def _receiving(*messages: dict) -> Request:
    """A request whose body arrives as ``messages``."""
    pending = iter(messages)

    async def receive():
        return next(pending)

    return Request({"type": "http", "method": "POST", "path": "/", "headers": []}, receive)


async def test_a_whole_body_is_read_from_every_message_up_to_the_limit():
    parts = [{"type": "http.request", "body": part, "more_body": True} for part in (b'{"a": ', b"", b'"bcd"')]
    request = _receiving(*parts, {"type": "http.request", "body": b"}", "more_body": False})
    assert await read_body(request, 12) == b'{"a": "bcd"}'
    single = {"type": "http.request", "body": b"{}"}  # more_body may be left out when it is false
    assert await read_body(_receiving(single), 2) == b"{}"
    assert await read_body(_receiving({"type": "http.request"}), 0) == b""


async def test_a_whole_body_past_the_limit_or_cut_by_a_disconnect_is_refused():
    parts = [{"type": "http.request", "body": b"x" * 8, "more_body": True}] * 2
    with pytest.raises(ProxyError) as refused:
        await read_body(_receiving(*parts), 15)
    assert refused.value.status == 413 and refused.value.code == "request_too_large"
    with pytest.raises(ClientGone):
        await read_body(_receiving(parts[0], {"type": "http.disconnect"}), 100)
    with pytest.raises(ProxyError) as refused:  # the limit is the same for a body streamed on
        async for _ in limited_body(_receiving(*parts).receive, 15):
            pass
    assert refused.value.status == 413


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
def test_a_compressed_error_is_inflated_only_as_far_as_it_is_read(encoding):
    """An error body the proxy reads (it was fetched to be relayed as compressed) is inflated up to its limit:
    a few kilobytes can inflate to gigabytes."""
    wbits = {"gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS, "raw-deflate": -zlib.MAX_WBITS}[encoding]
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    bomb = packer.compress(b" " * 50_000_000) + packer.flush()
    assert len(bomb) < 100_000
    assert _decode(bomb, encoding.removeprefix("raw-"), 4096) == b" " * 4096
    whole = zlib.compressobj(9, zlib.DEFLATED, wbits)
    assert _decode(whole.compress(b'{"a": 1}') + whole.flush(), encoding.removeprefix("raw-"), 4096) \
        == b'{"a": 1}'
