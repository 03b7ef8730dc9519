"""Access control: proxy keys, CORS for browser apps, the body limit, exposure warnings."""

from __future__ import annotations

import hmac

import httpx
import openai
import pytest

from conftest import UPSTREAM_KEY, proxy_config, sdk
from proxy import auth
from proxy.config import load_config
from servers import running_proxy
from spec_check import check_error_body

TEAM_KEYS = ["pk-team-alpha-1c9d", "pk-team-beta-77e0"]
MESSAGES = [{"role": "user", "content": "Hi"}]
BODY = {"model": "o3-pro", "messages": MESSAGES}


@pytest.fixture(scope="module")
def guarded(fake_server):
    with running_proxy(proxy_config(fake_server.base_url, server={"api_keys": TEAM_KEYS})) as url:
        yield url


def chat(url, headers):
    return httpx.post(url + "/v1/chat/completions", json=BODY, headers=headers, timeout=30)


@pytest.mark.parametrize("headers", [
    {"authorization": f"Bearer {TEAM_KEYS[0]}"},
    {"authorization": f"bearer {TEAM_KEYS[1]}"},
    {"x-api-key": TEAM_KEYS[1]},
    {"authorization": "Bearer sk-someone-elses", "x-api-key": TEAM_KEYS[0]},
])
def test_a_proxy_key_lets_the_request_through_with_the_upstream_key(guarded, fake, headers):
    response = chat(guarded, headers)
    assert response.status_code == 200, response.text
    (request,) = fake.requests
    assert request.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert "x-api-key" not in request.headers


@pytest.mark.parametrize("headers, code", [
    ({}, "missing_api_key"),
    ({"authorization": "Bearer wrong"}, "invalid_api_key"),
    ({"authorization": f"Basic {TEAM_KEYS[0]}"}, "missing_api_key"),
    ({"x-api-key": TEAM_KEYS[0][:-1]}, "invalid_api_key"),
    ({"authorization": f"Bearer {UPSTREAM_KEY}"}, "invalid_api_key"),
])
def test_missing_or_wrong_keys_get_401_and_never_reach_the_upstream(guarded, fake, headers, code):
    for response in (chat(guarded, headers), httpx.get(guarded + "/v1/models", headers=headers),
                     httpx.post(guarded + "/v1/embeddings", json={"model": "m", "input": "x"}, headers=headers)):
        assert response.status_code == 401
        body = response.json()
        check_error_body(body)
        assert body["error"]["code"] == code and body["error"]["type"] == "invalid_request_error"
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert fake.requests == []


def test_the_sdk_sees_an_authentication_error(guarded, fake):
    with pytest.raises(openai.AuthenticationError):
        sdk(guarded).chat.completions.create(model="o3-pro", messages=MESSAGES)
    team = openai.OpenAI(base_url=guarded + "/v1", api_key=TEAM_KEYS[0], max_retries=0)
    assert team.chat.completions.create(model="o3-pro", messages=MESSAGES).choices


def test_probes_stay_open(guarded, fake):
    """Without a key, by GET and by HEAD (as uptime monitors often probe), answered by the proxy itself."""
    for path in ("/", "/healthz", "/readyz", "/metrics"):
        assert httpx.get(guarded + path).status_code == 200, path
        head = httpx.head(guarded + path)
        assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 0, path
    assert fake.requests == []


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_probe_paths_need_a_key_for_other_methods(guarded, fake, method):
    """Only GET and HEAD are probes: another method on their paths would be passed through with the upstream key."""
    for path in ("/", "/healthz", "/readyz", "/metrics"):
        response = httpx.request(method, guarded + path, json={"model": "gpt-4o", "input": "x"})
        assert response.status_code == 401, (method, path)
        body = response.json()
        check_error_body(body)
        assert body["error"]["code"] == "missing_api_key" and body["error"]["type"] == "invalid_request_error"
    assert fake.requests == []


def test_cors_preflight_of_a_probe_path_is_answered_without_a_key(make_proxy, fake):
    origin = "http://localhost:3000"
    with make_proxy(server={"cors_origins": [origin], "api_keys": TEAM_KEYS}) as url:
        preflight = httpx.options(url + "/healthz", headers={"origin": origin, "access-control-request-method": "POST"})
        probe = httpx.get(url + "/healthz", headers={"origin": origin})
        refused = httpx.post(url + "/healthz", json={}, headers={"origin": origin})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == origin
    assert probe.status_code == 200 and probe.json() == {"status": "ok"}
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == origin
    assert fake.requests == []


def test_metrics_can_require_a_key(make_proxy, fake):
    with make_proxy(server={"api_keys": TEAM_KEYS, "metrics_require_key": True}) as url:
        assert httpx.get(url + "/metrics").status_code == 401
        assert httpx.get(url + "/metrics", headers={"authorization": f"Bearer {TEAM_KEYS[0]}"}).status_code == 200
        assert httpx.get(url + "/healthz").status_code == 200


def test_keys_are_compared_in_constant_time_against_every_key(monkeypatch):
    calls = []
    real_compare = hmac.compare_digest

    def compare(a, b):
        calls.append((a, b))
        return real_compare(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", compare)
    keys = auth.ProxyKeys(TEAM_KEYS + ["pk-third"])
    assert keys.accepts(TEAM_KEYS[0])  # matches the first key, yet every key is compared
    assert len(calls) == 3 and all(len(a) == len(b) == 32 for a, b in calls)
    calls.clear()
    assert not keys.accepts("nope")
    assert len(calls) == 3


def test_without_proxy_keys_the_clients_key_goes_upstream(make_proxy, fake):
    with make_proxy(upstream={"api_key": None}) as url:
        assert chat(url, {"authorization": "Bearer sk-users-own"}).status_code == 200
    assert fake.requests[0].headers["authorization"] == "Bearer sk-users-own"


def test_cors_is_off_by_default(proxy_url, fake):
    preflight = httpx.options(proxy_url + "/v1/chat/completions", headers={
        "origin": "http://localhost:3000", "access-control-request-method": "POST"})
    assert preflight.status_code == 403 and "access-control-allow-origin" not in preflight.headers
    response = chat(proxy_url, {"origin": "http://localhost:3000"})
    assert response.status_code == 403 and "access-control-allow-origin" not in response.headers
    assert fake.requests == []


def test_cors_preflight_and_exposed_headers(make_proxy, fake):
    origin = "http://localhost:3000"
    with make_proxy(server={"cors_origins": [origin], "api_keys": TEAM_KEYS}) as url:
        preflight = httpx.options(url + "/v1/chat/completions", headers={
            "origin": origin, "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == origin
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        other = httpx.options(url + "/v1/chat/completions", headers={
            "origin": "http://evil.example", "access-control-request-method": "POST"})
        assert other.status_code == 403 and "access-control-allow-origin" not in other.headers
        assert other.json()["error"]["code"] == "origin_not_allowed"
        answer = chat(url, {"origin": origin, "authorization": f"Bearer {TEAM_KEYS[0]}"})
        refused = chat(url, {"origin": origin})
    assert answer.headers["access-control-allow-origin"] == origin
    exposed = {name.strip() for name in answer.headers["access-control-expose-headers"].split(",")}
    assert {"x-request-id", "x-proxy-mode", "x-proxy-dropped-params"} <= exposed
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == origin
    assert len(fake.requests) == 1


def test_body_limit_applies_with_keys_too(make_proxy, fake):
    with make_proxy(server={"max_body_bytes": 500, "api_keys": TEAM_KEYS}) as url:
        big = {"model": "o3-pro", "messages": [{"role": "user", "content": "x" * 1000}]}
        response = httpx.post(url + "/v1/chat/completions", json=big,
                              headers={"authorization": f"Bearer {TEAM_KEYS[0]}"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
    assert fake.requests == []


@pytest.mark.parametrize("host, proxy_keys, upstream_key, warned", [
    ("0.0.0.0", "", "sk-1", True),
    ("192.0.2.10", "", "sk-1", True),
    ("0.0.0.0", "team", "sk-1", False),
    ("127.0.0.1", "", "sk-1", False),
    ("localhost", "", "sk-1", False),
    ("::1", "", "sk-1", False),
    ("0.0.0.0", "", "", False),
])
def test_an_open_proxy_with_an_upstream_key_is_warned_about(host, proxy_keys, upstream_key, warned):
    config = load_config(env={"PROXY_API_KEYS": proxy_keys, "OPENAI_API_KEY": upstream_key},
                         overrides={"server": {"host": host}})
    warnings = auth.exposure_warnings(config)
    assert bool(warnings) is warned
    if warned:
        assert host in warnings[0] and "api_keys" in warnings[0]
