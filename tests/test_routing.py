"""Which chat requests are translated: one decision, configurable and learnable."""

import pytest

from proxy.config import TranslateConfig
from proxy.routing import ModelRouter, says_responses_only


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


@pytest.mark.parametrize("text, expected", [
    ("This model is only supported in v1/responses and not in v1/chat/completions.", True),
    ('{"error":{"message":"The model o3-pro is not supported on chat/completions, use the Responses API"}}', True),
    ("model gpt-5-pro is only available via the Responses API", True),
    ("The model `gpt-9` does not exist or you do not have access to it.", False),
    ("Unsupported parameter: 'temperature'", False),
])
def test_responses_only_errors_are_recognised(text, expected):
    assert says_responses_only(text) is expected
