"""Web pages and the proxy: the Origin allowlist, CORS headers that are the proxy's alone, JSON bodies only.

Each test is an attack a hostile web page (or an upstream's permissive CORS default) makes, and asserts the safe
answer: no upstream call for a refused page, no CORS header the proxy did not decide.
"""

from __future__ import annotations

import json
from contextlib import contextmanager

import httpx
import pytest

from conftest import proxy_config, sdk
from proxy.config import ConfigError
from servers import running_app, running_proxy
from spec_check import check_error_body

GOOD = "https://good.example"
EVIL = "https://evil.example"
CHAT = {"model": "o3-pro", "messages": [{"role": "user", "content": "Hi"}], "n": 4}
PREFLIGHT = {"access-control-request-method": "POST", "access-control-request-headers": "content-type"}


class PermissiveUpstream:
    """An upstream with CORS open to everyone, as vLLM and LiteLLM are by default: every answer says
    ``Access-Control-Allow-Origin: *`` (in the capitalised form they write) and sets a cookie."""

    HEADERS = [(b"Access-Control-Allow-Origin", b"*"), (b"Access-Control-Allow-Credentials", b"true"),
               (b"Access-Control-Allow-Methods", b"*"), (b"Set-Cookie", b"session=upstream; Path=/")]

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        self.requests.append((scope["method"], scope["path"]))
        if scope["path"].endswith("/models"):
            body = {"object": "list", "data": [{"id": "gpt-4o", "object": "model", "created": 0, "owned_by": "x"}]}
        else:
            body = {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}]}
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), *self.HEADERS]})
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})


@contextmanager
def permissive_proxy(**server):
    upstream = PermissiveUpstream()
    with running_app(upstream) as upstream_url, running_proxy(proxy_config(upstream_url + "/v1",
                                                                          server=server)) as url:
        yield url, upstream


def upstream_browser_headers(response: httpx.Response) -> list[str]:
    """The headers only the upstream would have written: its credentials flag, methods and cookie."""
    return [name for name in ("access-control-allow-credentials", "access-control-allow-methods", "set-cookie")
            if name in response.headers]


def embeddings(url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(url + "/v1/embeddings", json={"model": "m", "input": "x"}, headers=headers or {}, timeout=30)


def test_with_cors_off_no_answer_carries_the_upstreams_cors_headers():
    with permissive_proxy() as (url, upstream):
        answers = [embeddings(url), httpx.get(url + "/v1/models", timeout=30),
                   httpx.options(url + "/v1/embeddings", timeout=30)]
        preflight = httpx.options(url + "/v1/embeddings", headers={"origin": EVIL, **PREFLIGHT}, timeout=30)
        from_page = embeddings(url, {"origin": EVIL})
    for answer in answers:
        assert answer.status_code == 200
        assert "access-control-allow-origin" not in answer.headers and upstream_browser_headers(answer) == []
    for refused in (preflight, from_page):
        assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
    assert [method for method, _ in upstream.requests] == ["POST", "GET", "OPTIONS"]  # nothing from the page


def test_an_allowlist_is_not_widened_by_the_upstream():
    with permissive_proxy(cors_origins=[GOOD]) as (url, upstream):
        evil = embeddings(url, {"origin": EVIL})
        evil_preflight = httpx.options(url + "/v1/embeddings", headers={"origin": EVIL, **PREFLIGHT}, timeout=30)
        good = embeddings(url, {"origin": GOOD})
        good_preflight = httpx.options(url + "/v1/embeddings", headers={"origin": GOOD, **PREFLIGHT}, timeout=30)
        good_models = httpx.get(url + "/v1/models", headers={"origin": GOOD}, timeout=30)
    for refused in (evil, evil_preflight):
        assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
    for allowed in (good, good_preflight, good_models):
        assert allowed.status_code == 200
        assert allowed.headers.get_list("access-control-allow-origin") == [GOOD]
    assert upstream_browser_headers(good) == [] and upstream_browser_headers(good_models) == []
    assert len(upstream.requests) == 2  # the good POST and GET; the proxy answers preflights itself


def test_a_foreign_pages_simple_request_is_refused_before_any_upstream_call(proxy_url, fake):
    # What a page's fetch(..., {method: "POST", body: JSON.stringify(...)}) sends: no preflight needed.
    for path in ("/v1/chat/completions", "/v1/responses", "/v1/embeddings"):
        response = httpx.post(proxy_url + path, content=json.dumps(CHAT),
                              headers={"origin": EVIL, "content-type": "text/plain;charset=UTF-8"}, timeout=30)
        assert response.status_code == 403, response.text
        body = response.json()
        check_error_body(body)
        assert body["error"]["code"] == "origin_not_allowed" and "server.cors_origins" in body["error"]["message"]
    null_origin = httpx.post(proxy_url + "/v1/chat/completions", json=CHAT, headers={"origin": "null"}, timeout=30)
    assert null_origin.status_code == 403
    assert fake.requests == []


def test_an_allowed_origin_and_clients_without_one_are_served(make_proxy, fake):
    with make_proxy(server={"cors_origins": [GOOD]}) as url:
        page = httpx.post(url + "/v1/chat/completions", json=CHAT, headers={"origin": GOOD}, timeout=30)
        client = sdk(url).chat.completions.create(model="o3-pro", messages=CHAT["messages"])
    assert page.status_code == 200 and page.headers["access-control-allow-origin"] == GOOD
    assert client.choices[0].message.content
    assert len(fake.requests) == 5  # n: 4, then one


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses", "/v1/embeddings"])
@pytest.mark.parametrize("content_type", ["text/plain;charset=UTF-8", "application/x-www-form-urlencoded"])
def test_page_body_types_get_415_naming_the_json_content_type(proxy_url, fake, path, content_type):
    # text/plain is what a page sends unasked; form-urlencoded is what curl -d sends.
    response = httpx.post(proxy_url + path, content=json.dumps(CHAT), headers={"content-type": content_type},
                          timeout=30)
    assert response.status_code == 415, response.text
    body = response.json()
    check_error_body(body)
    assert body["error"]["code"] == "unsupported_content_type"
    assert "Content-Type: application/json" in body["error"]["message"]
    assert fake.requests == []


def test_chat_takes_only_json_but_accepts_an_undeclared_body(proxy_url, fake):
    multipart = httpx.post(proxy_url + "/v1/chat/completions", data={"model": "o3-pro"}, files={"f": b"x"},
                           timeout=30)
    assert multipart.status_code == 415
    for headers in ({"content-type": "application/json; charset=utf-8"}, {}):
        response = httpx.post(proxy_url + "/v1/chat/completions", content=json.dumps(CHAT).encode(),
                              headers=headers, timeout=30)
        assert response.status_code == 200, response.text


def test_uploads_still_pass_through_as_multipart(make_proxy, fake):
    with make_proxy(server={"cors_origins": [GOOD]}) as url:
        response = httpx.post(url + "/v1/audio/transcriptions", data={"model": "whisper-1"},
                              files={"file": ("a.mp3", b"ID3 audio", "audio/mpeg")}, headers={"origin": GOOD},
                              timeout=30)
    assert response.status_code == 200, response.text
    assert fake.requests[0].headers["content-type"].startswith("multipart/form-data")


def test_origins_are_compared_as_browsers_write_them(make_proxy, fake):
    with make_proxy(server={"cors_origins": ["https://Good.example/"]}) as url:
        page = httpx.post(url + "/v1/chat/completions", json=CHAT, headers={"origin": GOOD}, timeout=30)
    assert page.status_code == 200 and page.headers["access-control-allow-origin"] == GOOD
    with pytest.raises(ConfigError, match="not an origin"):
        proxy_config("http://127.0.0.1:9/v1", server={"cors_origins": ["https://good.example/app"]})
