"""The proxy's errors are types that know what they warrant: retries and the fallback model ask them, not their
codes or words (the wording and statuses clients see are asserted in test_errors.py and test_faults.py)."""

from __future__ import annotations

import pytest

from proxy.errors import (ClientError, ClientGone, ConnectTimeout, FirstByteTimeout, IdleTimeout, InvalidRequest,
                          InvalidUpstreamAnswer, NoUpstreamForModel, ProxyError, UpstreamBroken, UpstreamNotFound,
                          UpstreamRefusedParam, UpstreamStatusError, UpstreamTimeout, UpstreamUnreachable)


@pytest.mark.parametrize(("error", "retryable", "fallback"), [
    (UpstreamUnreachable("http://up/v1/responses", "the connection was refused"), True, True),
    (ConnectTimeout("http://up/v1/responses", 3), True, True),
    (FirstByteTimeout(900), False, True),  # the upstream may be working, and paid, already
    (IdleTimeout(600), False, True),
    (UpstreamBroken("reset"), False, True),
    (InvalidUpstreamAnswer.too_large(10), False, True),
    (InvalidRequest("bad"), False, False),
    (ClientError(413, "too large"), False, False),
    (ClientGone(), False, False),
    (NoUpstreamForModel("nope"), False, True),
])
def test_each_kind_knows_whether_to_retry_and_fall_back(error, retryable, fallback):
    assert (error.retryable, error.warrants_fallback) == (retryable, fallback)


def test_the_kinds_nest_as_documented():
    assert issubclass(ConnectTimeout, UpstreamTimeout) and issubclass(IdleTimeout, UpstreamTimeout)
    assert issubclass(IdleTimeout, UpstreamBroken)  # a body's read failed: resumed or reported like a cut
    assert issubclass(UpstreamRefusedParam, UpstreamStatusError) and issubclass(UpstreamNotFound, UpstreamStatusError)


@pytest.mark.parametrize(("status", "payload", "fallback"), [
    (503, {"error": {"message": "busy"}}, True),
    (429, {"error": {"message": "slow down"}}, True),
    (404, {"error": {"message": "The model `x` does not exist", "code": "model_not_found"}}, True),
    (400, {"error": {"message": "The engine is currently overloaded"}}, True),
    (400, {"error": {"message": "Invalid value", "param": "temperature"}}, False),
    (401, {"error": {"message": "Incorrect API key"}}, False),
])
def test_an_upstream_answer_warrants_the_fallback_by_its_status_and_code(status, payload, fallback):
    error = UpstreamStatusError.of_answer(status, payload, b"", {})
    assert error.warrants_fallback is fallback and error.payload is payload


def test_a_400_naming_a_parameter_is_a_refused_parameter():
    error = UpstreamStatusError.of_answer(400, {"error": {"message": "no", "param": "background"}}, b"", {})
    assert isinstance(error, UpstreamRefusedParam) and error.param == "background"
    assert not isinstance(UpstreamStatusError.of_answer(400, {"error": {"message": "no"}}, b"", {}),
                          UpstreamRefusedParam)


def test_replace_makes_a_new_error_of_the_same_kind():
    error = UpstreamStatusError.of_answer(400, {"error": {"message": "bad 'x'", "param": "x"}}, b"", {"a": "1"})
    renamed = error.replace(param="y", message="bad 'y'", headers={"b": "2"})
    assert type(renamed) is type(error) and (renamed.param, renamed.message, renamed.headers) == ("y", "bad 'y'",
                                                                                                 {"b": "2"})
    assert (error.param, error.message, error.headers) == ("x", "bad 'x'", {"a": "1"})
    assert str(renamed) == "bad 'y'" and renamed.body()["error"]["param"] == "y"


def test_an_error_the_upstream_reports_inside_an_answer_is_judged_by_its_status():
    assert ProxyError(500, "failed", "server_error").warrants_fallback
    assert not ProxyError(400, "bad", "invalid_request_error").warrants_fallback
