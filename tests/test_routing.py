"""Which chat requests are translated: one decision, configurable and learnable."""

import json
import logging

import pytest

from proxy.config import TranslateConfig
from proxy.routing import MODELS_REMEMBERED, NAME_REMEMBERED_CHARS, ModelRouter
from proxy.translate import says_responses_only


@pytest.mark.parametrize("model", [
    "o1-pro", "o1-pro-2025-03-19", "o3-pro", "o3-pro-2025-06-10", "o3-deep-research", "o4-mini-deep-research-2025-06-26",
    "codex-mini-latest", "gpt-5-pro", "gpt-5-pro-2025-10-06", "gpt-5.1-codex", "gpt-5-codex", "gpt-5.1-codex-max",
    "computer-use-preview", "O3-PRO", "openai/o3-pro",
])
def test_default_patterns_translate(model):
    assert ModelRouter(TranslateConfig()).should_translate(model)


@pytest.mark.parametrize("model", ["gpt-4o", "o3", "o3-mini", "gpt-5", "gpt-5-mini", "gpt-4.1", "o1", "text-embedding-3-small"])
def test_other_models_pass_through(model):
    assert not ModelRouter(TranslateConfig()).should_translate(model)


def test_configured_globs_and_translate_all():
    router = ModelRouter(TranslateConfig(models=["my-*"]))
    assert router.should_translate("my-model") and not router.should_translate("o3-pro")
    assert ModelRouter(TranslateConfig(all_models=True)).should_translate("gpt-4o")
    assert not ModelRouter(TranslateConfig(models=[])).should_translate("o3-pro")


def test_learned_models_are_remembered():
    router = ModelRouter(TranslateConfig())
    assert not router.should_translate("new-model")
    router.learn("new-model")
    assert router.should_translate("new-model") and router.learned == {"new-model"}


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
    router = ModelRouter(TranslateConfig(models=["long-*"]))
    long = "long-" + "x" * NAME_REMEMBERED_CHARS
    assert router.should_translate(long) and router.should_translate(long[:NAME_REMEMBERED_CHARS])
    assert list(router._decided) == [long[:NAME_REMEMBERED_CHARS]]  # the longer one is decided each time
    router.learn("other-" + "y" * NAME_REMEMBERED_CHARS)
    assert router.learned == frozenset()


def test_learned_models_are_capped(caplog):
    router = ModelRouter(TranslateConfig())
    for index in range(MODELS_REMEMBERED):
        router.learn(f"model-{index}")
    caplog.set_level(logging.INFO, "proxy.routing")
    router.learn("one-too-many")
    router.learn("two-too-many")
    assert len(router.learned) == MODELS_REMEMBERED and not router.should_translate("one-too-many")
    assert [record.levelno for record in caplog.records] == [logging.WARNING]  # said once
    router.learn("model-0")  # already known: no change, no warning
    assert len(caplog.records) == 1 and router.should_translate("model-0")
