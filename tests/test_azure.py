"""Azure OpenAI as the upstream, v1 and dated API, against a fake that enforces Azure's layout, key and errors."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from conftest import CLIENT_KEY, NO_BACKGROUND, sdk
from chunks import fold
from fake_azure_upstream import (AZURE_KEY, API_VERSION, FILTER_RESULTS, FILTERED_OUTPUT, FILTERED_OUTPUT_RESULTS,
                                 FILTERED_PROMPT, OUTPUT_RESULTS, PROMPT_FILTERED, PROMPT_RESULTS, FakeAzureUpstream,
                                 prompt_filtered_chat)
from fake_upstream import (Reply, Respond, Stream, build_response, function_call_item, message_item,
                           running_fake_upstream, stream_events)
from proxy.config import load_config
from proxy.configfile import ConfigError
from proxy.upstream import FORM_MODEL_LIMIT
from servers import running_proxy

TUNING = {"upstream": {"backoff_initial": 0.01, "backoff_max": 0.05},
          "background": {"poll_initial": 0.02, "poll_max": 0.05}, "models": NO_BACKGROUND}


@pytest.fixture(scope="module")
def azure_server() -> Iterator[FakeAzureUpstream]:
    with running_fake_upstream(FakeAzureUpstream()) as fake:
        yield fake


def azure_env(fake: FakeAzureUpstream, dated: bool) -> dict[str, str]:
    """What the official AzureOpenAI client reads, and nothing else: the endpoint as the portal shows it."""
    env = {"AZURE_OPENAI_ENDPOINT": fake.endpoint + "/", "AZURE_OPENAI_API_KEY": AZURE_KEY}
    return env | {"OPENAI_API_VERSION": API_VERSION} if dated else env


@contextmanager
def azure_proxy(fake: FakeAzureUpstream, dated: bool, **sections: Any) -> Iterator[str]:
    overrides = {**TUNING, **sections}
    if "upstream" in sections:
        overrides["upstream"] = {**TUNING["upstream"], **sections["upstream"]}
    with running_proxy(load_config(env=azure_env(fake, dated), overrides=overrides)) as url:
        yield url


@pytest.fixture(params=["v1", "dated"])
def azure(request: pytest.FixtureRequest, azure_server: FakeAzureUpstream) -> FakeAzureUpstream:
    azure_server.reset()
    azure_server.dated = request.param == "dated"
    return azure_server


def called(fake: FakeAzureUpstream, v1: str, dated: str) -> str:
    """The Azure path (and query) the proxy should have called."""
    return dated.format(version=API_VERSION) if fake.dated else v1


def test_the_azure_variables_alone_configure_the_upstream(azure_server):
    config = load_config(env=azure_env(azure_server, dated=True))
    assert config.upstream.kind == "azure"
    assert config.upstream.base_url == azure_server.endpoint + "/openai"
    assert config.upstream.api_version == API_VERSION
    assert config.upstream.key_header == "api-key" and config.upstream.credential("k") == "k"
    v1 = load_config(env=azure_env(azure_server, dated=False)).upstream
    assert v1.base_url == azure_server.endpoint + "/openai/v1" and v1.api_version is None
    assert load_config(env={**azure_env(azure_server, dated=False), "OPENAI_BASE_URL": "https://api.openai.com/v1"}
                       ).upstream.kind == "openai"


def test_translated_non_streaming(azure):
    with azure_proxy(azure, azure.dated) as url:
        answer = sdk(url).chat.completions.create(model="o3-pro", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "Echo: hi"
    assert azure.azure_paths == [called(azure, "/openai/v1/responses", "/openai/responses?api-version={version}")]
    sent = azure.requests[0]
    assert sent.headers["api-key"] == AZURE_KEY and "authorization" not in sent.headers
    assert CLIENT_KEY not in str(sent.headers)


def test_translated_streaming(azure):
    with azure_proxy(azure, azure.dated) as url:
        stream = sdk(url).chat.completions.create(model="o3-pro", stream=True,
                                                  messages=[{"role": "user", "content": "stream me"}])
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "Echo: stream me"
    assert azure.requests[0].json["stream"] is True


def test_a_translated_tool_call(azure):
    azure.script(Respond(output=[function_call_item("get_weather", {"city": "Paris"}, call_id="call_1")]))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    with azure_proxy(azure, azure.dated) as url:
        answer = sdk(url).chat.completions.create(model="o3-pro", tools=tools,
                                                  messages=[{"role": "user", "content": "weather?"}])
    call = answer.choices[0].message.tool_calls[0]
    assert (call.id, call.function.name, call.function.arguments) == ("call_1", "get_weather", '{"city":"Paris"}')
    assert answer.choices[0].finish_reason == "tool_calls"


def test_a_background_run_is_followed_on_azures_paths(azure):
    """A background run is created, and followed by its stream, on Azure's own paths (no poll is needed)."""
    with azure_proxy(azure, azure.dated, models={"o3-pro*": {"background": True}}) as url:
        answer = sdk(url).chat.completions.create(model="o3-pro", messages=[{"role": "user", "content": "long"}])
    assert answer.choices[0].message.content == "Echo: long"
    created = azure.requests[0].json
    assert created["background"] is True and created["stream"] is True
    assert azure.azure_paths and all(path.startswith(called(azure, "/openai/v1/responses", "/openai/responses"))
                                     for path in azure.azure_paths)
    if azure.dated:
        assert all(path.endswith(f"?api-version={API_VERSION}") for path in azure.azure_paths)


def test_the_model_is_named_as_its_deployment(azure):
    with azure_proxy(azure, azure.dated, upstream={"deployments": {"o3-pro": "my-o3-pro", "gpt-4o": "gpt-4o"}}) as url:
        client = sdk(url)
        client.chat.completions.create(model="o3-pro", messages=[{"role": "user", "content": "hi"}])
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert azure.requests[0].json["model"] == "my-o3-pro"
    assert azure.deployments_called == ["my-o3-pro", "gpt-4o"]


def test_chat_for_a_chat_model_passes_through_to_its_deployment(azure):
    with azure_proxy(azure, azure.dated) as url:
        answer = sdk(url).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        stream = sdk(url).chat.completions.create(model="gpt-4o", stream=True,
                                                  messages=[{"role": "user", "content": "hey"}])
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert answer.choices[0].message.content == "Echo: hi" and text == "Echo: hey"
    path = called(azure, "/openai/v1/chat/completions", "/openai/deployments/gpt-4o/chat/completions?api-version={version}")
    assert azure.azure_paths == [path, path]


def test_azures_wording_for_a_responses_only_model_is_detected(azure):
    azure.responses_only.add("my-o3-pro")
    with azure_proxy(azure, azure.dated, upstream={"deployments": {"reasoner": "my-o3-pro"}}) as url:
        answer = sdk(url).chat.completions.create(model="reasoner", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "Echo: hi"
    assert azure.statuses[0] == 400  # OperationNotSupported, then the same deployment through the Responses API
    assert azure.azure_paths[1] == called(azure, "/openai/v1/responses", "/openai/responses?api-version={version}")


def test_other_endpoints_pass_through_with_azures_paths_and_key(azure):
    with azure_proxy(azure, azure.dated) as url:
        client = sdk(url)
        embedding = client.embeddings.create(model="text-embedding-3-small", input="hello")
        models = client.models.list()
    assert len(embedding.data[0].embedding) == 16 and models.data
    assert azure.azure_paths == [
        called(azure, "/openai/v1/embeddings", "/openai/deployments/text-embedding-3-small/embeddings?api-version={version}"),
        called(azure, "/openai/v1/models", "/openai/models?api-version={version}")]
    assert all(request.headers["api-key"] == AZURE_KEY for request in azure.requests)


def test_a_wrong_key_gets_azures_401(azure):
    env = azure_env(azure, azure.dated) | {"AZURE_OPENAI_API_KEY": "wrong-key-123"}
    with running_proxy(load_config(env=env, overrides=TUNING)) as url:
        with pytest.raises(openai.AuthenticationError) as caught:
            sdk(url).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["code"] == "401" and "Access denied" in caught.value.body["message"]


def test_a_bearer_token_reaches_the_v1_api(azure_server):
    azure_server.reset()
    azure_server.dated = False
    with azure_proxy(azure_server, False, upstream={"auth_header": "Authorization"}) as url:
        answer = sdk(url).chat.completions.create(model="o3-pro", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "Echo: hi"
    assert azure_server.requests[0].headers["authorization"] == f"Bearer {AZURE_KEY}"
    assert "api-key" not in azure_server.requests[0].headers


@pytest.mark.parametrize("details", [
    {"content_filters": [{"blocked": True, "source_type": "prompt", "content_filter_raw": [],
                          "content_filter_results": FILTER_RESULTS}]},
    {"inner_error": {"code": "ResponsibleAIPolicyViolation", "content_filter_results": FILTER_RESULTS}}],
    ids=["content_filters", "inner_error"])
def test_a_filtered_prompt_reaches_a_translated_chat_client_in_azures_chat_shape(azure, details):
    """A filtered prompt's results in the Responses API's ``content_filters``, or in the v1 REST reference's
    ``inner_error``: a chat client gets them as Azure's chat endpoint gives them, in ``innererror``."""
    azure.script(Reply(400, {"error": {
        "message": PROMPT_FILTERED, "type": "invalid_request_error", "param": "prompt", "code": "content_filter",
        **details}}))
    with azure_proxy(azure, azure.dated) as url:
        answer = httpx.post(f"{url}/v1/chat/completions", json={"model": "o3-pro", "messages": [
            {"role": "user", "content": "something filtered"}]}, timeout=30)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "content_filter" and error["message"] == PROMPT_FILTERED
    assert error["innererror"] == prompt_filtered_chat()["error"]["innererror"]


@pytest.mark.parametrize("model", ["o3-pro", "gpt-4o"], ids=["translated", "chat model"])
def test_a_prompt_azure_filters_gets_its_400_whichever_api_serves_it(azure, model):
    with azure_proxy(azure, azure.dated) as url:
        answer = httpx.post(f"{url}/v1/chat/completions", json={"model": model, "messages": [
            {"role": "user", "content": f"please {FILTERED_PROMPT}"}]}, timeout=30)
    assert answer.status_code == 400
    assert azure.azure_paths[0].startswith(called(azure, "/openai/v1/", "/openai/"))
    error = answer.json()["error"]
    expected = prompt_filtered_chat()["error"]
    assert {key: error[key] for key in ("message", "param", "code", "status", "innererror")} == \
        {key: expected[key] for key in ("message", "param", "code", "status", "innererror")}


def test_a_filtered_prompt_of_a_chat_model_is_relayed_as_azure_sent_it(azure):
    azure.script(Reply(400, prompt_filtered_chat()))
    with azure_proxy(azure, azure.dated) as url:
        answer = httpx.post(f"{url}/v1/chat/completions", json={"model": "gpt-4o", "messages": [
            {"role": "user", "content": "something filtered"}]}, timeout=30)
    assert answer.status_code == 400 and answer.json() == prompt_filtered_chat()


def chat(url: str, text: str, stream: bool = False) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", timeout=30, json={
        "model": "o3-pro", "stream": stream, "messages": [{"role": "user", "content": text}]})


def chunks_of(answer: httpx.Response) -> list[dict[str, Any]]:
    payloads = [line[6:] for line in answer.text.split("\n") if line.startswith("data: ")]
    assert payloads[-1] == "[DONE]"
    return [json.loads(payload) for payload in payloads[:-1]]


def test_a_translated_answer_carries_azures_filter_results_as_its_chat_endpoint_does(azure):
    """The Response's ``content_filters`` become ``prompt_filter_results`` on the completion and
    ``content_filter_results`` on its choice (AzureCreateChatCompletionResponse in the v1 REST reference)."""
    with azure_proxy(azure, azure.dated) as url:
        answer = chat(url, "hi").json()
    assert answer["prompt_filter_results"] == [{"prompt_index": 0, "content_filter_results": PROMPT_RESULTS}]
    choice = answer["choices"][0]
    assert choice["content_filter_results"] == OUTPUT_RESULTS
    assert choice["finish_reason"] == "stop" and choice["message"]["content"] == "Echo: hi"


def test_a_translated_stream_carries_azures_filter_results_as_its_chat_endpoint_does(azure):
    """The prompt's results in a chunk without choices ahead of the answer (as Azure's chat stream sends them),
    the output's on the choice's last chunk."""
    with azure_proxy(azure, azure.dated) as url:
        chunks = chunks_of(chat(url, "stream me", stream=True))
    prompt = next(index for index, chunk in enumerate(chunks) if "prompt_filter_results" in chunk)
    first_text = next(index for index, chunk in enumerate(chunks)
                      if chunk["choices"] and chunk["choices"][0]["delta"].get("content"))
    assert prompt < first_text and chunks[prompt]["choices"] == []
    assert chunks[prompt]["prompt_filter_results"] == [{"prompt_index": 0, "content_filter_results": PROMPT_RESULTS}]
    last = chunks[-1]["choices"][0]
    assert last["finish_reason"] == "stop" and last["content_filter_results"] == OUTPUT_RESULTS
    assert fold(chunks)["message"]["content"] == "Echo: stream me"


def filter_fields(answer: httpx.Response, stream: bool) -> dict[str, Any]:
    """Where an answer carries Azure's filter results: the prompt's (and, streamed, in a chunk without choices),
    the output's on the choice (streamed, on the chunk that ends it)."""
    if not stream:
        completion = answer.json()
        return {"prompt": completion["prompt_filter_results"],
                "output": completion["choices"][0]["content_filter_results"]}
    chunks = chunks_of(answer)
    (prompt,) = [chunk for chunk in chunks if "prompt_filter_results" in chunk]
    last = next(chunk["choices"][0] for chunk in reversed(chunks) if chunk["choices"])
    assert prompt["choices"] == [] and last["finish_reason"] == "stop"
    return {"prompt": prompt["prompt_filter_results"], "output": last["content_filter_results"]}


@pytest.mark.parametrize("stream", [False, True], ids=["non-streaming", "streaming"])
def test_translated_and_chat_answers_carry_azures_filter_results_alike(azure, stream):
    """A chat model's answer is Azure's chat endpoint's, relayed; a Responses-only model's, translated: a chat
    client finds the filter's results in the same places in both."""
    with azure_proxy(azure, azure.dated) as url:
        answers = [httpx.post(f"{url}/v1/chat/completions", timeout=30, json={
            "model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
            for model in ("gpt-4o", "o3-pro")]
    assert [path.split("?")[0].rsplit("/", 2)[-2:] for path in azure.azure_paths] == \
        [["chat", "completions"], ["v1" if not azure.dated else "openai", "responses"]]
    relayed, translated = (filter_fields(answer, stream) for answer in answers)
    assert relayed == translated == {"prompt": [{"prompt_index": 0, "content_filter_results": PROMPT_RESULTS}],
                                     "output": OUTPUT_RESULTS}


@pytest.mark.parametrize("stream", [False, True], ids=["non-streaming", "streaming"])
def test_an_answer_azures_filter_cut_finishes_with_content_filter(azure, stream):
    with azure_proxy(azure, azure.dated) as url:
        answer = chat(url, f"say this {FILTERED_OUTPUT} and more", stream=stream)
    if stream:
        chunks = chunks_of(answer)
        choice = {**chunks[-1]["choices"][0], "message": fold(chunks)["message"]}
    else:
        choice = answer.json()["choices"][0]
    assert choice["finish_reason"] == "content_filter"
    assert choice["content_filter_results"] == FILTERED_OUTPUT_RESULTS
    assert choice["message"]["content"] == "Echo: say this "


def test_a_filtered_answer_finishes_with_content_filter(azure):
    azure.script(Respond(output=[message_item("partial")], status="incomplete",
                         incomplete_details={"reason": "content_filter"}))
    with azure_proxy(azure, azure.dated) as url:
        answer = sdk(url).chat.completions.create(model="o3-pro", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].finish_reason == "content_filter"


def test_azure_beside_openai_in_the_yaml(azure_server, fake_server, tmp_path):
    azure_server.reset()
    fake_server.reset()
    azure_server.dated = True
    (tmp_path / "config.yaml").write_text(f"""
upstreams:
  - name: azure
    kind: azure
    base_url: {azure_server.endpoint}
    api_key: {AZURE_KEY}
    api_version: {API_VERSION}
    deployments: {{o3-pro: my-o3-pro}}
    models: ["o3-pro*"]
  - name: openai
    base_url: {fake_server.base_url}
    api_key: sk-other-1234
""")
    config = load_config(tmp_path / "config.yaml", env={}, overrides=TUNING)
    with running_proxy(config) as url:
        client = sdk(url)
        client.chat.completions.create(model="o3-pro", messages=[{"role": "user", "content": "hi"}])
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        described = httpx.get(url + "/").text
    assert azure_server.azure_paths == [f"/openai/responses?api-version={API_VERSION}"]
    assert [r.path for r in fake_server.requests] == ["/v1/chat/completions"]
    assert AZURE_KEY not in described


def test_the_compose_files_azure_variant_configures_azure():
    """The commented Azure lines of docker-compose.yml, uncommented in place of OPENAI_API_KEY, make an Azure upstream."""
    text = (Path(__file__).parents[1] / "docker-compose.yml").read_text("utf-8")
    lines = [re.sub(r"^(\s*)# (AZURE_OPENAI_\w+|OPENAI_API_VERSION):", r"\1\2:", line) for line in text.splitlines()
             if "OPENAI_API_KEY: ${OPENAI_API_KEY" not in line]
    environment = yaml.safe_load("\n".join(lines))["services"]["proxy"]["environment"]
    values = {"AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com/", "AZURE_OPENAI_API_KEY": "azure-key-1234"}
    env = {name: values.get(name, value) for name, value in environment.items() if name != "PROXY_API_KEYS"}
    assert set(env) == {"AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY", "OPENAI_API_VERSION"}
    upstream = load_config(env=env).upstream
    assert (upstream.kind, upstream.base_url, upstream.keys) == ("azure", "https://res.openai.azure.com/openai",
                                                                 ["azure-key-1234"])


@pytest.mark.parametrize("key, value", [("api_version", API_VERSION), ("deployments", {"o3-pro": "my-o3-pro"})])
def test_azures_keys_without_kind_azure_are_refused(key, value):
    with pytest.raises(ConfigError, match=f"{key} is for Azure OpenAI: set kind: azure"):
        load_config(env={}, overrides={"upstream": {"base_url": "https://api.openai.com/v1", key: value}})


def test_images_and_audio_go_to_their_deployment(azure):
    with azure_proxy(azure, azure.dated) as url:
        client = sdk(url)
        with pytest.raises(openai.NotFoundError):  # the fake serves no images: what matters is the URL called
            client.images.generate(model="gpt-image-1", prompt="a lighthouse")
        speech = httpx.post(f"{url}/v1/audio/speech", json={"model": "gpt-4o", "input": "hi", "voice": "alloy"},
                            timeout=30)
        transcript = client.audio.transcriptions.create(model="whisper", file=("a.mp3", b"ID3..."))
    assert azure.azure_paths == [
        called(azure, "/openai/v1/images/generations",
               "/openai/deployments/gpt-image-1/images/generations?api-version={version}"),
        called(azure, "/openai/v1/audio/speech", "/openai/deployments/gpt-4o/audio/speech?api-version={version}"),
        called(azure, "/openai/v1/audio/transcriptions",
               "/openai/deployments/whisper/audio/transcriptions?api-version={version}")]
    assert speech.status_code == 200 and len(speech.content) > 100_000
    assert transcript.text == "Transcript of a.mp3"


BOUNDARY = "form-boundary-7d1c"


def multipart(*parts: tuple[str, bytes, str | None]) -> bytes:
    """A multipart/form-data body with its parts in the order given: (field, value, filename or None)."""
    body = b""
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        kind = "\r\ncontent-type: application/octet-stream" if filename else ""
        body += f"--{BOUNDARY}\r\ncontent-disposition: {disposition}{kind}\r\n\r\n".encode() + value + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


def upload(url: str, path: str, body: bytes) -> httpx.Response:
    return httpx.post(f"{url}{path}", content=body, timeout=30,
                      headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"})


def test_a_multipart_upload_goes_to_the_deployment_its_model_field_names(azure):
    """The deployment is read from the form's model field (mapped through ``deployments``): on the dated API it is
    named in the path, on both in the form. The body reaches Azure otherwise byte for byte, the model field behind
    the file too, as long as it is within the start the proxy reads; the rest is streamed on."""
    audio = bytes(range(256)) * 4096  # 1 MiB of file, after the model field
    ahead = multipart(("model", b"transcriber", None), ("file", audio, "talk.mp3"), ("language", b"en", None))
    behind = multipart(("file", b"ID3 short", "short.mp3"), ("model", b"whisper", None))
    with azure_proxy(azure, azure.dated, upstream={"deployments": {"transcriber": "whisper"}}) as url:
        first = upload(url, "/v1/audio/transcriptions", ahead)
        second = upload(url, "/v1/audio/transcriptions", behind)
    assert first.status_code == 200 and second.status_code == 200
    assert first.json()["file"]["sha256"] == hashlib.sha256(audio).hexdigest()
    assert first.json()["fields"] == {"model": "whisper", "language": "en"}
    assert azure.azure_paths == [called(azure, "/openai/v1/audio/transcriptions",
                                        "/openai/deployments/whisper/audio/transcriptions?api-version={version}")] * 2
    assert azure.deployments_called == ["whisper", "whisper"]
    assert [request.body for request in azure.requests] == [ahead.replace(b"transcriber", b"whisper"), behind]


def test_a_multipart_upload_without_a_model_ahead_of_a_large_file_gets_a_clear_400(azure_server):
    azure_server.reset()
    azure_server.dated = True
    late = multipart(("file", b"x" * 2 * FORM_MODEL_LIMIT, "long.mp3"), ("model", b"whisper", None))
    with azure_proxy(azure_server, True) as url:
        answers = [upload(url, "/v1/audio/transcriptions", body)
                   for body in (late, multipart(("file", b"ID3", "a.mp3")))]
    for answer in answers:
        assert answer.status_code == 400
        error = answer.json()["error"]
        assert error["param"] == "model" and "model field ahead of its file" in error["message"]
    assert azure_server.requests == []


def test_files_upload_to_the_resources_files(azure):
    with azure_proxy(azure, azure.dated) as url:
        uploaded = sdk(url).files.create(file=("data.jsonl", b'{"a": 1}\n'), purpose="batch")
    assert uploaded.filename == "data.jsonl" and uploaded.purpose == "batch" and uploaded.bytes == 9
    assert azure.azure_paths == [called(azure, "/openai/v1/files", "/openai/files?api-version={version}")]

def azure_calls(fake: FakeAzureUpstream, method: str) -> list[str]:
    """The Azure paths (and queries) of the requests made with ``method``, in order."""
    return [path for request, path in zip(fake.requests, fake.azure_paths) if request.method == method]


def test_a_background_run_azure_will_not_stream_is_polled_on_azures_paths(azure):
    """Where Azure refuses to stream a background run, it is created without streaming and polled at
    ``GET /openai/v1/responses/{id}`` (v1) or ``GET /openai/responses/{id}?api-version=`` (dated)."""
    azure.background_polls = 2
    azure.script(Reply(400, {"error": {"message": "Streaming is not supported for this model.",
                                       "type": "invalid_request_error", "param": "stream", "code": None}}))
    with azure_proxy(azure, azure.dated, models={"o3-pro*": {"background": True}}) as url:
        answer = sdk(url).chat.completions.create(model="o3-pro", messages=[{"role": "user", "content": "long"}])
    assert answer.choices[0].message.content == "Echo: long"
    first, second = (request.json for request in azure.requests if request.method == "POST")
    assert first["stream"] is True and "stream" not in second and second["background"] is True
    polls = azure_calls(azure, "GET")
    assert len(polls) >= 2
    response_id = azure.requests[-1].path.rsplit("/", 1)[1]
    assert set(polls) == {called(azure, f"/openai/v1/responses/{response_id}",
                                 f"/openai/responses/{response_id}?api-version={{version}}")}


def test_a_cut_background_stream_azure_will_not_resume_is_polled(azure):
    """A background stream cut short is resumed at ``?stream=true``; where Azure refuses that, the run is polled."""
    text = "A long answer, streamed in pieces."
    events = stream_events(build_response({"background": True, "store": True, "model": "o3-pro"},
                                          [message_item(text)]), text_chunk=5)
    azure.background_polls = 1
    azure.script(Stream(events=events, cut_after=6),
                 Reply(400, {"error": {"message": "Streaming a stored response is not supported.",
                                       "type": "invalid_request_error", "param": "stream", "code": None}}))
    with azure_proxy(azure, azure.dated, models={"o3-pro*": {"background": True}}) as url:
        answer = sdk(url).chat.completions.create(model="o3-pro", messages=[{"role": "user", "content": "long"}])
    assert answer.choices[0].message.content == text
    response_id = events[0]["response"]["id"]
    resume, *polls = azure_calls(azure, "GET")
    v1, dated = f"/openai/v1/responses/{response_id}", f"/openai/responses/{response_id}"
    if azure.dated:
        assert resume.startswith(dated + f"?api-version={API_VERSION}&stream=true&starting_after=")
    else:
        assert resume.startswith(v1 + "?stream=true&starting_after=")
    assert polls and set(polls) == {called(azure, v1, dated + "?api-version={version}")}
