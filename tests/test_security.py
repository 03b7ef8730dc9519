"""Attacks on the proxy's trust boundaries: keys, upstream host, paths, headers."""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
from urllib.parse import unquote

import httpx
import pytest
import uvicorn

from conftest import UPSTREAM_KEY
from fake_upstream import Hang, Reply, Stream, build_response, error_body, message_item, stream_events
from proxy import cli
from servers import running_app
from wire import MESSAGES, closed_port, completion_of, http, post_chat, raw_exchange, status_of


@pytest.mark.parametrize("key", ["ключ", "a\r\nSet-Cookie: session=evil", "nul\x00byte", "tab\there", "x" * 20000])
def test_dropped_parameter_names_cannot_break_or_inject_response_headers(proxy_url, fake, key):
    """Unknown keys are listed in x-proxy-dropped-params; the client chose them, so they are encoded."""
    response = post_chat(proxy_url, {"model": "o3-pro", "messages": MESSAGES, "temperature": 1, key: 1})
    completion_of(response)
    assert "set-cookie" not in response.headers
    listed = response.headers["x-proxy-dropped-params"]
    assert listed.isascii() and listed.isprintable() and len(listed) <= 1024
    names = [unquote(name) for name in listed.split(", ")]
    assert "temperature" in names
    if len(key) < 100:
        assert key in names


class Listener:
    """A loopback port standing for a host an attacker wants the proxy to reach; records every connection."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def evil():
    listener = Listener()
    yield listener
    listener.close()


def request_line_attacks(target: str) -> list[tuple[bytes, dict[str, str]]]:
    """(request target, headers) pairs that try to point the proxy at ``target`` (host:port)."""
    host_headers = ["Host", "X-Forwarded-Host", "X-Forwarded-Server", "X-Host", "X-Original-Host", "Forwarded"]
    attacks: list[tuple[bytes, dict[str, str]]] = []
    for name in host_headers:
        value = f"host={target}" if name == "Forwarded" else target
        attacks.append((b"/v1/embeddings", {name: value}))
    for name in ("X-Original-URL", "X-Rewrite-URL", "X-Forwarded-Uri"):
        attacks.append((b"/v1/embeddings", {name: f"http://{target}/v1/embeddings"}))
    for path in (f"//{target}/v1/embeddings", f"/http://{target}/v1/embeddings", f"/v1/@{target}/embeddings",
                 f"/@{target}/v1/embeddings", f"/v1/embeddings@{target}", f"/%2F%2F{target}/v1/embeddings",
                 f"/v1/http:%2F%2F{target}/embeddings", f"/v1/embeddings?url=http://{target}/",
                 f"/v1/embeddings#@{target}", f"http://{target}/v1/embeddings", f"https://{target}/v1/embeddings",
                 f"//user@{target}/v1/embeddings", f"/\\\\{target}/v1/embeddings"):
        attacks.append((path.encode(), {}))
    return attacks


def test_no_request_can_choose_the_upstream_host(proxy_url, fake, evil):
    target = f"127.0.0.1:{evil.port}"
    body = b'{"model": "text-embedding-3-small", "input": "x"}'
    for path, headers in request_line_attacks(target):
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        host = "" if "Host" in headers else "Host: proxy.local\r\n"
        head, _ = raw_exchange(proxy_url, b"POST " + path + b" HTTP/1.1\r\n" + host.encode() + extra.encode() +
                               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                               "Connection: close\r\n\r\n".encode() + body)
        assert status_of(head) in (200, 400, 404), (path, headers, head)
    for method in (b"CONNECT " + target.encode(), b"OPTIONS *"):
        head, _ = raw_exchange(proxy_url, method + b" HTTP/1.1\r\nHost: " + target.encode() + b"\r\nConnection: close\r\n\r\n")
        assert status_of(head) >= 400
    chat = post_chat(proxy_url, {"model": f"http://{target}/", "messages": MESSAGES})
    assert chat.status_code == 200
    assert evil.connections == 0
    assert fake.requests, "the attacks reached the real upstream"
    for request in fake.requests:
        assert request.path.startswith("/v1/") and target not in request.headers.get("host", "")


TRAVERSALS = [
    "/v1/../../etc/passwd", "/v1/%2e%2e/secret", "/v1/%2E%2E/secret", "/v1/.%2e/secret", "/v1/%2e./secret",
    "/v1/%252e%252e/secret", "/v1/%25252e%25252e/secret", "/v1/..%2fsecret", "/v1/..%252fsecret",
    "/v1/..%5csecret", "/v1/..%255csecret", "/v1/..\\secret", "/v1/models/..", "/v1/./models",
    "/v1/files/%2e%2e%2f%2e%2e%2fadmin", "/v1/files/%c0%ae%c0%ae/admin",
]


def decoded_fully(path: str) -> str:
    for _ in range(10):
        path, before = unquote(path), path
        if path == before:
            break
    return path


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_never_reaches_the_upstream(proxy_url, fake, path):
    """Refused with a 400, or forwarded as a path that stays below the base URL however often it is decoded."""
    head, body = raw_exchange(proxy_url, f"GET {path} HTTP/1.1\r\nHost: proxy.local\r\nConnection: close\r\n\r\n".encode())
    if status_of(head) == 400:
        assert json.loads(body)["error"]["code"] == "invalid_path"
        assert fake.requests == []
        return
    for request in fake.requests:
        segments = decoded_fully(request.raw_path).replace("\\", "/").split("/")
        assert request.raw_path.startswith("/v1/")
        assert "." not in segments and ".." not in segments, request.raw_path


@pytest.mark.parametrize("method, path", [
    ("GET", "/v1/files/file-abc%2Fcontent"), ("GET", "/v1/files/file-abc%2fcontent"),
    ("POST", "/v1/responses/resp_1%2Fcancel"), ("DELETE", "/v1/responses/resp_1%2F..%2Fother"),
    ("POST", "/v1/chat%2Fcompletions"), ("GET", "/v1%2Fmodels"), ("GET", "/v1/files/a%252Fb"),
])
def test_an_encoded_slash_is_refused_not_made_a_separator(proxy_url, fake, method, path):
    """The path is judged as sent: ``%2F`` (any case, however often encoded) is part of a segment, refused."""
    body = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}' if method == "POST" else b""
    head, answer = raw_exchange(proxy_url, f"{method} {path} HTTP/1.1\r\nHost: proxy.local\r\nContent-Type: "
                                f"application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                                .encode() + body)
    assert status_of(head) == 400, head
    assert json.loads(answer)["error"]["code"] == "invalid_path"
    assert fake.requests == []


@pytest.mark.parametrize("path, forwarded", [
    ("/v1/files/file-abc/content", "/v1/files/file-abc/content"),
    ("/v1/models%3Fx=1", "/v1/models%3Fx=1"),
    ("/v1/files/a%23b", "/v1/files/a%23b"),
    ("/v1/files/%E2%9C%93", "/v1/files/%E2%9C%93"),
    ("/v1/files/a%20b", "/v1/files/a%20b"),
])
def test_forwarded_paths_are_encoded_once(proxy_url, fake, path, forwarded):
    """What the proxy checked is what the upstream decodes: reserved characters cannot turn into a query."""
    raw_exchange(proxy_url, f"GET {path} HTTP/1.1\r\nHost: proxy.local\r\nConnection: close\r\n\r\n".encode())
    (request,) = fake.requests
    assert request.raw_path == forwarded
    assert request.query == {}


@pytest.mark.parametrize("endpoint, model", [("/v1/models", None), ("/v1/embeddings", "text-embedding-3-small"),
                                             ("/v1/chat/completions", "gpt-4o"), ("/v1/chat/completions", "o3-pro")])
def test_hop_by_hop_and_sensitive_headers_stay_with_the_proxy(proxy_url, fake, endpoint, model):
    headers = {
        "Connection": "keep-alive, X-Hop-Secret, x-other-hop",
        "X-Hop-Secret": "hop1", "X-Other-Hop": "hop2",
        "Keep-Alive": "timeout=5", "TE": "trailers", "Trailer": "X-T", "Upgrade": "h2c",
        "Proxy-Authorization": "Basic c2VjcmV0", "Proxy-Connection": "keep-alive", "Proxy-Secret": "p",
        "Cookie": "session=abc", "X-Api-Key": "client-key", "Authorization": "Bearer client-key",
        "Host": "attacker.example", "X-Kept": "kept",
    }
    body = {"model": model, "messages": MESSAGES} if "chat" in endpoint else {"model": model, "input": "x"}
    if endpoint == "/v1/models":
        response = httpx.get(proxy_url + endpoint, headers=headers, timeout=30)
    else:
        response = httpx.post(proxy_url + endpoint, headers=headers, json=body, timeout=30)
    assert response.status_code == 200
    (sent,) = fake.requests
    names = set(sent.headers)
    assert not names & {"x-hop-secret", "x-other-hop", "keep-alive", "te", "trailer", "upgrade", "cookie",
                        "x-api-key", "proxy-authorization", "proxy-connection", "proxy-secret"}
    assert "client-key" not in str(sent.headers) and "hop1" not in str(sent.headers)
    assert sent.headers["host"] == fake.base_url.split("/")[2]
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert sent.headers["x-kept"] == "kept"


def test_pass_through_asks_for_the_encoding_the_client_accepts(proxy_url, fake):
    """httpx would add its own Accept-Encoding and the raw relay would hand gzip to a client that never asked."""
    raw_exchange(proxy_url, b"GET /v1/models HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n")
    raw_exchange(proxy_url, b"GET /v1/models HTTP/1.1\r\nHost: p\r\nAccept-Encoding: br\r\nConnection: close\r\n\r\n")
    assert [r.headers.get("accept-encoding") for r in fake.requests] == ["identity", "br"]


RAW_HEADER_ATTACKS = [
    b"X-A: a\r\n b: folded\r\n",  # obsolete line folding
    b"X-A: a\rX-Injected: cr\r\n",  # bare CR
    b"X-A: a\nX-Injected: lf\r\n",  # bare LF
    b"X-A: a%0d%0aX-Injected: encoded\r\n",
    b"X-A: a\x00b\r\n",
    b"X-A : space-before-colon\r\n",
]


@pytest.mark.parametrize("attack", RAW_HEADER_ATTACKS)
def test_no_header_value_reaching_the_upstream_holds_a_line_break(proxy_url, fake, attack):
    head, _ = raw_exchange(proxy_url, b"GET /v1/models HTTP/1.1\r\nHost: p\r\n" + attack + b"Connection: close\r\n\r\n")
    if status_of(head) == 400 or not fake.requests:
        assert fake.requests == []
        return
    (sent,) = fake.requests
    for name, value in sent.headers.items():
        assert not set("\r\n\x00") & set(name + value), (name, value)
    assert "x-injected" not in sent.headers or sent.headers.get("x-a") in ("a", None)


SECRET_IN_URL = "sk-url-secret-77d1e0"


def exchanges_with_every_outcome(url: str, fake, *, upstream_down: bool = False) -> list[httpx.Response]:
    """Successes, client errors, upstream errors, failures mid-stream and timeouts, on every route."""
    chat = {"model": "o3-pro", "messages": MESSAGES}
    if not upstream_down:
        fake.script(Reply(status=401, json=error_body("Incorrect API key provided: sk-proj-****abcd.",
                                                      code="invalid_api_key")),
                    Reply(status=500, json=error_body("Boom.", type="server_error")), *[Reply(status=503)] * 2,
                    Stream(events=stream_events(build_response(None, [message_item("cut")]))[:4]),
                    Hang(2))
    sent = [
        http.post(url + "/v1/chat/completions", json=chat),  # 401
        http.post(url + "/v1/chat/completions", json={**chat, "stream": True}),  # 500 then 503s
        http.post(url + "/v1/chat/completions", json={**chat, "stream": True}),  # cut stream
        http.post(url + "/v1/chat/completions", json=chat, timeout=1),  # hang: first-byte timeout below
    ] if not upstream_down else []
    for request in (
        ("POST", "/v1/chat/completions", {"json": chat}),
        ("POST", "/v1/chat/completions", {"json": {**chat, "stream": True}}),
        ("POST", "/v1/chat/completions", {"json": {"model": "gpt-4o", "messages": MESSAGES}}),
        ("POST", "/v1/chat/completions", {"json": {"model": "gpt-4o", "messages": "x"}}),
        ("POST", "/v1/chat/completions", {"content": b"{broken"}),
        ("POST", "/v1/chat/completions", {"json": {**chat, "n": 99}}),
        ("POST", "/v1/embeddings", {"json": {"model": "text-embedding-3-small", "input": "x"}}),
        ("GET", "/v1/models", {}), ("GET", "/v1/no-such-thing", {}), ("GET", "/v1/../x", {}),
        ("GET", "/", {}), ("GET", "/healthz", {}),
    ):
        method, path, options = request
        sent.append(http.request(method, url + path, timeout=10, **options))
    return sent


def test_the_upstream_key_never_reaches_a_client_or_a_log_line(make_proxy, fake, caplog):
    caplog.set_level(logging.DEBUG)
    seen = []
    with make_proxy(upstream={"first_byte_timeout": 0.3}) as url:
        seen += exchanges_with_every_outcome(url, fake)
    with make_proxy(f"http://127.0.0.1:{closed_port()}/v1") as url:
        seen += exchanges_with_every_outcome(url, fake, upstream_down=True)
    statuses = {response.status_code for response in seen}
    assert {200, 400, 401, 404, 502, 503, 504} <= statuses
    assert any("data: {\"error\"" in response.text for response in seen)
    for response in seen:
        captured = response.text + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        assert UPSTREAM_KEY not in captured and UPSTREAM_KEY[3:] not in captured, response.request.url
    assert caplog.records, "nothing was logged: the log check would prove nothing"
    assert all(UPSTREAM_KEY not in record.getMessage() for record in caplog.records)


def test_credentials_in_the_upstream_url_are_not_shown(make_proxy, fake):
    """GET / names the upstream for operators; user and password in its URL stay hidden."""
    with make_proxy(fake.base_url.replace("http://", f"http://user:{SECRET_IN_URL}@")) as url:
        described = http.get(url + "/").json()
        assert SECRET_IN_URL not in json.dumps(described)
        assert described["upstream"] == fake.base_url
        completion_of(post_chat(url, {"model": "o3-pro", "messages": MESSAGES}))  # the credentials are still used
    assert fake.requests[-1].headers["authorization"] == "Basic " + base64.b64encode(f"user:{SECRET_IN_URL}".encode()).decode()


def test_upstream_urls_with_credentials_stay_out_of_the_log(tmp_path, monkeypatch, fake, caplog):
    """The command line sets up logging; no line, at INFO, carries the user and password of the upstream URL."""
    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.update(app=app))
    config = tmp_path / "config.yaml"
    config.write_text(f"upstream:\n  base_url: {fake.base_url.replace('http://', f'http://user:{SECRET_IN_URL}@')}\n"
                      f"  api_key: {UPSTREAM_KEY}\n")
    assert cli.main(["--config", str(config), "--log-level", "info"]) == 0
    caplog.set_level(logging.INFO)
    with running_app(started["app"]) as url:
        completion_of(post_chat(url, {"model": "gpt-4o", "messages": MESSAGES}))
    assert all(SECRET_IN_URL not in record.getMessage() for record in caplog.records)
