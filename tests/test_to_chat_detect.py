"""Reading an upstream's error answer to `/v1/responses` as "this model speaks only chat" (says_chat_only)."""

from __future__ import annotations

import json

import pytest

from proxy.translate import says_chat_only

pytestmark = pytest.mark.core

REQUEST = {"model": "deepseek-chat", "input": "Hello"}


def says(status, payload, request=REQUEST):
    return says_chat_only(status, payload, json.dumps(payload) if payload is not None else "<html>", request)


@pytest.mark.parametrize("status, payload", [
    (404, {"detail": "Not Found"}),  # vLLM, FastAPI servers
    (404, {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}}),  # llama.cpp
    (404, None),  # a web server's page
    (405, {"detail": "Method Not Allowed"}),
    (400, {"error": {"message": "The model `deepseek-chat` does not support the Responses API.",
                     "type": "invalid_request_error", "param": "model", "code": "model_not_supported"}}),
    (400, {"error": {"message": "This endpoint is not supported for this provider.", "type": "invalid_request_error",
                     "param": None, "code": None}}),
])
def test_an_upstream_without_the_responses_api(status, payload):
    assert says(status, payload)


@pytest.mark.parametrize("status, payload", [
    (404, {"error": {"message": "Previous response with id 'resp_1' not found.", "type": "invalid_request_error",
                     "param": "previous_response_id", "code": "previous_response_not_found"}}),
    (404, {"error": {"message": "The model `x` does not exist.", "type": "invalid_request_error", "param": "model",
                     "code": "model_not_found"}}),
    (400, {"error": {"message": "Unsupported parameter: 'temperature' is not supported with this model.",
                     "type": "invalid_request_error", "param": None, "code": "unsupported_parameter"}}),
    (400, {"error": {"message": "Invalid value", "type": "invalid_request_error", "param": "input", "code": None}}),
    (400, {"error": {"message": "Your request was malformed.", "type": "invalid_request_error", "param": None,
                     "code": None}}),
    (500, {"error": {"message": "The model endpoint is not available.", "type": "server_error"}}),
])
def test_an_error_about_something_else(status, payload):
    assert not says(status, payload)


def test_the_models_name_and_the_clients_words_are_not_the_upstreams():
    named = {"model": "not-supported-model", "input": "Hello"}
    payload = {"error": {"message": "The model `not-supported-model` is overloaded.", "type": "invalid_request_error",
                         "param": None, "code": None}}
    assert not says(400, payload, named)
    echoed = {"model": "m", "input": "is this model not supported?"}
    payload = {"error": {"message": "Input 'is this model not supported?' is too long.",
                         "type": "invalid_request_error", "param": None, "code": None}}
    assert not says(400, payload, echoed)
