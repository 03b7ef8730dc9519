"""Bad input and a bad upstream always give an OpenAI-style error with the right status."""

from __future__ import annotations

import gzip
import socket

import httpx
import openai
import pytest

from fake_upstream import Hang
from spec_check import check_error_body


def post(url, **kwargs):
    return httpx.post(url + "/v1/chat/completions", timeout=30, **kwargs)


def assert_error(response, status, param=None):
    assert response.status_code == status, response.text
    body = response.json()
    check_error_body(body)
    assert set(body["error"]) == {"message", "type", "param", "code"}
    if param is not None:
        assert body["error"]["param"] == param
    assert "Traceback" not in response.text
    return body["error"]


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe", b'{"model": "o3-pro", "messages": [}'])
def test_malformed_json(proxy_url, fake, raw):
    error = assert_error(post(proxy_url, content=raw, headers={"content-type": "application/json"}), 400)
    assert error["type"] == "invalid_request_error"
    assert fake.requests == []


def test_compressed_chat_body_is_415_not_a_json_error(proxy_url, fake):
    body = gzip.compress(b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}')
    error = assert_error(post(proxy_url, content=body, headers={"content-type": "application/json",
                                                               "content-encoding": "gzip"}), 415)
    assert error["code"] == "unsupported_content_encoding" and "gzip" in error["message"]
    assert fake.requests == []


@pytest.mark.parametrize("body, param", [
    ([1, 2], None),
    ({"messages": [{"role": "user", "content": "x"}]}, "model"),
    ({"model": "", "messages": []}, "model"),
    ({"model": "o3-pro"}, "messages"),
    ({"model": "o3-pro", "messages": {"role": "user"}}, "messages"),
    ({"model": "o3-pro", "messages": [{"role": "user", "content": [{"type": "mystery"}]}]},
     "messages[0].content[0].type"),
    ({"model": "o3-pro", "messages": [{"role": "user", "content": "x"}], "tools": "all"}, "tools"),
    ({"model": "o3-pro", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}, "max_tokens"),
    ({"model": "o3-pro", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
])
def test_wrong_shapes_are_400_naming_the_parameter(proxy_url, fake, body, param):
    assert_error(post(proxy_url, json=body), 400, param)
    assert fake.requests == []


def test_sdk_sees_bad_request(client, fake):
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(model="o3-pro", messages=[{"role": "user", "content": "x"}], n=9)
    assert error.value.body["param"] == "n"


def test_oversized_body_is_413(make_proxy, fake):
    with make_proxy(server={"max_body_bytes": 1000}) as url:
        big = {"model": "o3-pro", "messages": [{"role": "user", "content": "x" * 5000}]}
        assert_error(post(url, json=big), 413)
        upload = httpx.post(url + "/v1/audio/transcriptions", timeout=30, files={"file": ("a.wav", b"0" * 5000)})
        assert_error(upload, 413)
    assert fake.requests == []


def test_unreachable_upstream_model_list_is_502(make_proxy):
    """The model list is asked of every upstream at once: one unreachable is a 502 too (chat requests, translated
    and passed through, are covered in test_faults.py)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before use: nothing listens there
    with make_proxy(f"http://127.0.0.1:{port}/v1") as url:
        assert_error(httpx.get(url + "/v1/models", timeout=30), 502)


def test_upstream_that_never_answers_is_504(make_proxy, fake):
    fake.script(Hang(5))
    with make_proxy(upstream={"first_byte_timeout": 0.5}) as url:
        error = assert_error(post(url, json={"model": "o3-pro", "messages": [{"role": "user", "content": "x"}]}), 504)
    assert error["code"] == "first_byte_timeout"
    assert "0.5" in error["message"]


def test_root_and_health(proxy_url):
    root = httpx.get(proxy_url + "/", timeout=30)
    assert root.status_code == 200 and root.json()["name"] == "responses-proxy"
    health = httpx.get(proxy_url + "/healthz", timeout=30)
    assert health.status_code == 200 and health.json() == {"status": "ok"}
