"""Which chat requests are translated: one decision in the model table, configurable and learnable."""

import json
import logging

import pytest
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Match

from proxy.app import ChatRoute, create_app
from proxy.auth import ProxyKeyMiddleware
from proxy.config import Config, TranslateConfig, UpstreamConfig
from proxy.errors import NoUpstreamForModel
from proxy.middleware import ObserveMiddleware
from proxy.models import MODELS_REMEMBERED, NAME_REMEMBERED_CHARS, Globs, ModelTable, Remembered
from proxy.translate import says_responses_only


def table(translate):
    """The model table of a configuration with these translation settings."""
    return ModelTable(Config(translate=translate))


@pytest.mark.parametrize("model", [
    "o1-pro", "o1-pro-2025-03-19", "o3-pro", "o3-pro-2025-06-10", "o3-deep-research", "o4-mini-deep-research-2025-06-26",
    "codex-mini-latest", "gpt-5-pro", "gpt-5-pro-2025-10-06", "gpt-5.1-codex", "gpt-5-codex", "gpt-5.1-codex-max",
    "computer-use-preview", "O3-PRO", "openai/o3-pro",
])
def test_default_patterns_translate(model):
    assert table(TranslateConfig()).translates(model)


@pytest.mark.parametrize("model", ["gpt-4o", "o3", "o3-mini", "gpt-5", "gpt-5-mini", "gpt-4.1", "o1", "text-embedding-3-small"])
def test_other_models_pass_through(model):
    assert not table(TranslateConfig()).translates(model)


def test_configured_globs_and_translate_all():
    router = table(TranslateConfig(models=["my-*"]))
    assert router.translates("my-model") and not router.translates("o3-pro")
    assert table(TranslateConfig(all_models=True)).translates("gpt-4o")
    assert not table(TranslateConfig(models=[])).translates("o3-pro")


def test_learned_models_are_remembered():
    router = table(TranslateConfig())
    assert not router.translates("new-model")
    router.learn_responses_only("new-model")
    assert router.translates("new-model") and router.learned == {"new-model"}


def said(text, model="gpt-9", **request):
    """``says_responses_only`` for an upstream error body ``text`` answering a chat request for ``model``."""
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    return says_responses_only(payload, text, {"model": model, "messages": [{"role": "user", "content": "x"}],
                                               **request})


def openai_error(message, param=None, code=None):
    return json.dumps({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}})


@pytest.mark.parametrize("text, expected", [
    (openai_error("This model is only supported in v1/responses and not in v1/chat/completions.", "model"), True),
    ("This model is only supported in v1/responses and not in v1/chat/completions.", True),
    ('{"error":{"message":"The model o3-pro is not supported on chat/completions, use the Responses API"}}', True),
    ("model gpt-5-pro is only available via the Responses API", True),
    ("The model `gpt-9` does not exist or you do not have access to it.", False),
    ("Unsupported parameter: 'temperature'", False),
])
def test_responses_only_errors_are_recognised(text, expected):
    assert said(text) is expected


ECHOED = 'x "é" Only Supported In v1/responses'


@pytest.mark.parametrize("text", [
    f"The model `{ECHOED}` does not exist or you do not have access to it.",
    f"The model `{ECHOED.lower()}` does not exist.",
    json.dumps({"error": {"message": f"The model `{ECHOED}` does not exist."}}),  # escaped: \" and \u00e9
    json.dumps({"error": {"message": f"The model `{ECHOED}` does not exist."}}, ensure_ascii=False),
])
def test_the_model_name_echoed_in_an_error_is_not_read_as_its_wording(text):
    assert not said(text, ECHOED)
    assert said(text + " This model is only supported in v1/responses.", ECHOED)


PHRASE = "only supported in v1/responses"


@pytest.mark.parametrize("text, request_", [
    # OpenAI's and Azure's answer to a key they do not know, and a gateway's
    (openai_error(f"Unrecognized request argument supplied: {PHRASE}"), {PHRASE: 1}),
    (openai_error(f"Unrecognized request arguments supplied: {PHRASE.upper()}, seed2"),
     {PHRASE.upper(): 1, "seed2": 2}),
    (json.dumps({"error": {"code": "BadRequest", "message": f"Unrecognized request argument supplied: {PHRASE}"}}),
     {PHRASE: 1}),
    (json.dumps({"detail": f"extra fields not permitted: {PHRASE}"}), {PHRASE: 1}),
    # a value repeated back, and a nested key
    (openai_error(f"Invalid value: '{PHRASE}'. Supported values are: 'none', 'auto'.", "tool_choice"),
     {"tool_choice": PHRASE}),
    (openai_error("Invalid value: 'Use the Responses API'."), {"user": "Use the Responses API"}),
    (openai_error(f"Unknown field `{PHRASE}`"), {"metadata": {PHRASE: "x"}}),
    # the model's name inside a key, which leaving the name out of the message would turn into the wording
    (openai_error("Unrecognized request argument supplied: only supported ingpt-4oresponses"),
     {"only supported ingpt-4oresponses": 1}),
])
def test_wording_the_client_wrote_is_not_read_as_the_upstreams(text, request_):
    """An upstream repeating a key or value of the request has said nothing about the model."""
    assert not said(text, "gpt-4o", **request_)


def test_an_error_about_another_parameter_is_not_about_the_model():
    genuine = "This model is only supported in v1/responses and not in v1/chat/completions."
    assert not said(openai_error(genuine, "messages"))
    assert said(openai_error(genuine, "model")) and said(openai_error(genuine)) and said(openai_error(genuine, ""))


def test_the_upstreams_own_wording_counts_beside_an_echo():
    def text(key):
        return openai_error(f"Unrecognized request argument supplied: {key}. This model is only supported in "
                            "v1/responses and not in v1/chat/completions.")

    assert said(text("seed2"), **{"seed2": 1, "messages": [{"role": "user", "content": "responses"}]})
    assert not said(text(PHRASE), **{PHRASE: 1})  # the same words: the client wrote them too, so they do not count


def test_long_names_are_neither_learned_nor_remembered():
    router = table(TranslateConfig(models=["long-*"]))
    long = "long-" + "x" * NAME_REMEMBERED_CHARS
    assert router.translates(long) and router.translates(long[:NAME_REMEMBERED_CHARS])
    router.learn_responses_only("other-" + "y" * NAME_REMEMBERED_CHARS)
    assert router.learned == frozenset()


def test_learned_models_are_capped(caplog):
    router = table(TranslateConfig())
    for index in range(MODELS_REMEMBERED):
        router.learn_responses_only(f"model-{index}")
    caplog.set_level(logging.INFO, "proxy.models")
    router.learn_responses_only("one-too-many")
    router.learn_responses_only("two-too-many")
    assert len(router.learned) == MODELS_REMEMBERED and not router.translates("one-too-many")
    assert [record.levelno for record in caplog.records] == [logging.WARNING]  # said once
    router.learn_responses_only("model-0")  # already known: no change, no warning
    assert len(caplog.records) == 1 and router.translates("model-0")


def test_only_names_of_bounded_length_are_remembered():
    computed = []
    remembered = Remembered(lambda name: computed.append(name) or len(name))
    long = "x" * (NAME_REMEMBERED_CHARS + 1)
    for _ in range(2):
        assert remembered("short") == 5 and remembered(long) == len(long)
    assert computed == ["short", long, long]  # the longer one is decided each time


@pytest.mark.parametrize(("bare", "model", "matches"), [
    (True, "o3-pro", True), (True, "OpenAI/O3-Pro-2025", True), (True, "o3", False),
    (False, "o3-pro", True), (False, "openai/o3-pro", False),
])
def test_one_glob_matcher_with_the_provider_prefix_rule_as_a_parameter(bare, model, matches):
    assert Globs(["o3-pro*"], bare=bare).match(model) is matches


def test_an_upstream_is_chosen_by_the_name_as_sent_and_settings_by_the_bare_name():
    config = Config(upstreams=[UpstreamConfig(name="a", base_url="http://a/v1", models=["openai/*"]),
                               UpstreamConfig(name="b", base_url="http://b/v1", models=["o3-*"])])
    table = ModelTable(config)
    assert table.upstream_for("openai/o3-pro") is table.upstreams[0]
    assert table.upstream_for("o3-pro") is table.upstreams[1]
    assert table.settings("openai/o3-pro").background and table.route("openai/o3-pro").direction == "to_responses"
    with pytest.raises(NoUpstreamForModel):
        table.route("gpt-4o")


def test_chat_is_a_route_of_fastapis_own_router_and_the_middleware_is_ordinary():
    """No detour around the framework: chat requests are matched by FastAPI's router (first, on any path ending in
    /chat/completions as sent), and the proxy's middleware is FastAPI's user middleware, outermost first."""
    app = create_app(Config(server={"cors_origins": ["https://app.example"], "api_keys": ["sk-proxy"]}))
    assert type(app) is FastAPI
    chat_route = app.router.routes[0]
    assert isinstance(chat_route, ChatRoute)
    assert [middleware.cls for middleware in app.user_middleware] == [
        ObserveMiddleware, CORSMiddleware, ProxyKeyMiddleware]
    assert [middleware.cls for middleware in create_app(Config()).user_middleware] == [ObserveMiddleware]

    def scope(path, method="POST"):
        return {"type": "http", "method": method, "path": path, "raw_path": path.encode()}

    for path in ("/v1/chat/completions", "/chat/completions/", "/openai/v1/chat/completions"):
        assert chat_route.matches(scope(path))[0] is Match.FULL
    for path, method in (("/v1/chat%2Fcompletions", "POST"), ("/v1/chat/completions", "GET"),
                         ("/v1/chat/completions/x", "POST")):
        assert chat_route.matches(scope(path, method))[0] is Match.NONE
