"""The upstream's base URL as people write it: without ``/v1``, leading nowhere, unreachable, carrying secrets.

Whatever goes wrong, the client and the operator learn which URL was called, in the proxy's words, and never
a user, password or query string of the base URL.
"""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from fake_upstream import Reply, Respond, message_item
from proxy.config import load_config
from servers import running_proxy
from wire import MESSAGES, check_error, closed_port, completion_of, http, post_chat, stream_outcome

BOTH = pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
SECRET = "s3cr3t-in-the-url"


def host_of(fake) -> str:
    """The fake upstream's URL as aggregators print it: no path."""
    return fake.base_url.removesuffix("/v1")


def error_of(response: httpx.Response, stream: bool) -> dict:
    if stream and response.status_code == 200:
        _, error = stream_outcome(response)
        assert error is not None
        return error
    return check_error(response)


@pytest.mark.parametrize("model", ["o3-pro", "gpt-4o"])
def test_a_base_url_without_a_path_means_v1(make_proxy, fake, model, caplog):
    caplog.set_level(logging.INFO, logger="proxy")
    with make_proxy(host_of(fake)) as url:
        answer = completion_of(post_chat(url, {"model": model, "messages": MESSAGES}))
        listed = http.get(url + "/v1/models")
        described = http.get(url + "/").json()
    assert answer["choices"][0]["message"]["content"]
    assert listed.status_code == 200 and listed.json()["data"]
    assert {request.path[:4] for request in fake.requests} == {"/v1/"}
    assert described["upstream"] == fake.base_url
    said = [record.getMessage() for record in caplog.records if record.name == "proxy"]
    assert any(fake.base_url in line and "/v1" in line and "no path" in line for line in said), said


def test_the_start_up_log_names_every_upstream_without_secrets(make_proxy, fake, caplog):
    caplog.set_level(logging.INFO, logger="proxy")
    secret_url = fake.base_url.replace("http://", f"http://user:{SECRET}@") + f"?key={SECRET}"
    config = load_config(env={}, overrides={"upstreams": [
        {"name": "direct", "base_url": secret_url, "api_key": "sk-a", "models": ["gpt-*"]},
        {"name": "other", "base_url": "https://other.example/api/v2", "api_key": "sk-b"}]})
    with running_proxy(config):
        pass
    said = [record.getMessage() for record in caplog.records if record.name == "proxy"]
    assert any(line.startswith("upstream direct: " + fake.base_url + " ") and "gpt-*" in line for line in said), said
    assert any(line.startswith("upstream other: https://other.example/api/v2 ") for line in said), said
    assert not any(SECRET in line for line in said)


@BOTH
def test_a_translated_request_to_a_path_that_leads_nowhere_names_the_url(make_proxy, fake, stream):
    with make_proxy(host_of(fake) + "/api") as url:
        error = error_of(post_chat(url, {"model": "o3-pro", "messages": MESSAGES}, stream=stream), stream)
    assert error["code"] == "upstream_not_found"
    assert f"POST {host_of(fake)}/api/responses" in error["message"]
    assert "base URL" in error["message"] and "/v1" in error["message"]


@pytest.mark.parametrize("method, path", [("POST", "/v1/chat/completions"), ("GET", "/v1/models"),
                                          ("GET", "/v1/responses/resp_x")])
def test_a_passed_through_404_page_becomes_an_error_naming_the_url(proxy_url, fake, method, path):
    fake.script(Reply(404, body=b"Not Found", content_type="text/plain"))
    response = http.request(method, proxy_url + path,
                            json={"model": "gpt-4o", "messages": MESSAGES} if method == "POST" else None)
    error = check_error(response, 404)
    assert error["code"] == "upstream_not_found"
    assert f"{method} {fake.base_url}{path.removeprefix('/v1')} (Not Found)" in error["message"]
    assert "base URL" in error["message"]


def test_an_upstream_404_that_an_api_explains_is_relayed_as_it_came(proxy_url, fake):
    body = {"error": {"message": "No response with id resp_x.", "type": "invalid_request_error",
                      "param": None, "code": None}}
    fake.script(Reply(404, json=body))
    assert http.get(proxy_url + "/v1/responses/resp_x").json() == body


def test_not_ready_when_the_upstream_does_not_list_models_there(make_proxy, fake):
    with make_proxy(host_of(fake) + "/api", server={"readiness_check": "models"}) as url:
        response = http.get(url + "/readyz")
    assert response.status_code == 503
    said = response.json()["upstreams"]["default"]
    assert f"GET {host_of(fake)}/api/models answered HTTP 404" in said and "base URL" in said


@pytest.mark.parametrize("model", ["o3-pro", "gpt-4o"])
@BOTH
def test_connection_refused_in_the_proxys_words(make_proxy, fake, model, stream, caplog):
    port = closed_port()
    caplog.set_level(logging.INFO)
    with make_proxy(f"http://127.0.0.1:{port}/v1", upstream={"max_attempts": 2}) as url:
        error = error_of(post_chat(url, {"model": model, "messages": MESSAGES}, stream=stream), stream)
    assert error["code"] == "upstream_unreachable"
    path = "/chat/completions" if model == "gpt-4o" else "/responses"
    assert error["message"].startswith(f"Could not reach the upstream at http://127.0.0.1:{port}/v1{path}: ")
    assert "connection was refused" in error["message"]
    assert "ssl:default" not in error["message"] and "Cannot connect to host" not in error["message"]
    retries = [record for record in caplog.records if "retrying" in record.getMessage()]
    assert retries and all(record.levelno == logging.WARNING for record in retries)
    if not stream:  # the request's own line: a failure of the server's side is a warning
        lines = [record for record in caplog.records if record.name == "proxy.access"]
        assert lines and all(record.levelno == logging.WARNING for record in lines), lines


def test_a_host_name_not_found_in_the_proxys_words(make_proxy, fake):
    with make_proxy("http://nonexistent.invalid/v1", upstream={"max_attempts": 1}) as url:
        error = check_error(post_chat(url, {"model": "o3-pro", "messages": MESSAGES}), 502)
    assert error["message"] == ("Could not reach the upstream at http://nonexistent.invalid/v1/responses: "
                                "its host name was not found (DNS).")


def test_secrets_in_the_base_url_appear_nowhere_but_on_the_wire(make_proxy, fake, caplog):
    """User, password and query of the base URL are used, and never shown: not in /, logs, metrics or errors."""
    caplog.set_level(logging.DEBUG)
    secret_url = fake.base_url.replace("http://", f"http://user:{SECRET}@") + f"?key={SECRET}"
    fake.script(Reply(404, body=b"Not Found", content_type="text/plain"))
    with make_proxy(secret_url) as url:
        failed = http.post(url + "/v1/chat/completions", json={"model": "gpt-4o", "messages": MESSAGES})
        fake.script(Respond(output=[message_item("fine")]))
        answered = completion_of(post_chat(url, {"model": "o3-pro", "messages": MESSAGES}))
        described = http.get(url + "/")
        metrics = http.get(url + "/metrics")
    assert answered["choices"][0]["message"]["content"] == "fine"
    assert fake.requests[-1].path == "/v1/responses" and fake.requests[-1].query == {"key": SECRET}
    assert fake.base_url in failed.json()["error"]["message"]
    assert described.json()["upstream"] == fake.base_url
    for shown in (failed.text, described.text, metrics.text, json.dumps(dict(failed.headers))):
        assert SECRET not in shown
    assert caplog.records and not any(SECRET in record.getMessage() for record in caplog.records)


def test_only_credential_query_values_are_log_secrets():
    from proxy.upstream import url_secrets

    secrets = url_secrets("https://user:pw@host/v1?api-version=2024-10-21&key=abc123&sig=s1")
    assert secrets == ["pw", "abc123", "s1"]
