"""A fake Azure OpenAI resource: Azure's URL layout, key header and error shapes around the fake OpenAI API.

What it enforces, as Microsoft's REST reference describes Azure OpenAI:
- the v1 API under ``/openai/v1/`` (``/responses``, ``/chat/completions``, ``/models``, ``/embeddings``...),
  ``model`` naming a deployment, the key in ``api-key`` or as a Bearer token, no dated ``api-version``
  (``preview`` and ``latest`` are accepted);
- the dated API: ``/openai/deployments/{deployment}/chat/completions`` (and embeddings, images, audio) and
  ``/openai/responses``, ``/openai/models``..., each with ``?api-version=YYYY-MM-DD[-preview]``, the key in
  ``api-key``;
- Azure's error bodies: 401 ``{"error": {"code": "401", "message": "Access denied due to invalid subscription
  key..."}}``, 404 ``{"error": {"code": "404", "message": "Resource not found"}}``, ``DeploymentNotFound``,
  and a 400 ``OperationNotSupported`` for a Responses-only model called through chat completions;
- Azure's content filter: every Response carries ``content_filters`` (required in the v1 REST reference,
  ``AzureContentFilterForResponsesAPI``: ``blocked``, ``source_type``, ``content_filter_results``,
  ``content_filter_offsets``), a prompt with ``FILTERED_PROMPT`` in it gets the 400 ``content_filter`` with
  ``innererror.content_filter_result`` (Microsoft's content filtering guide), from chat completions and Responses
  alike, and a prompt with ``FILTERED_OUTPUT`` in it gets an answer cut where that mark would be echoed:
  ``status: incomplete``, ``incomplete_details.reason: content_filter``, its completion entry ``blocked``;
  chat completions carry the filter's results as Azure's chat endpoint gives them (``prompt_filter_results`` on
  the completion, or in a first chunk without choices when streamed, and each choice's
  ``content_filter_results``).

Behind the layout the answers are the fake OpenAI API's (``FakeUpstream``): a request is recorded with its Azure
path in ``azure_paths`` and answered as ``/v1/...``, so scripts and recorded requests work as with the fake OpenAI.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fake_upstream import (FakeUpstream, Recorded, Respond, _chat_text, _Exchange, _last_user_text, _parse_multipart,
                           message_item)

AZURE_KEY = "azure-key-5d1e77b0c3"
API_VERSION = "2025-04-01-preview"
DATED_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(?:-preview)?")
# Azure's own deployment names: a deployment is named by whoever creates it.
DEPLOYMENTS = frozenset({"o3-pro", "gpt-5-codex", "gpt-4o", "my-o3-pro", "text-embedding-3-small", "whisper",
                         "gpt-image-1"})

ACCESS_DENIED = ("Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid "
                 "key for an active subscription and use a correct regional API endpoint for your resource.")
DEPLOYMENT_NOT_FOUND = ("The API deployment for this resource does not exist. If you created the deployment within "
                        "the last 5 minutes, please wait a moment and try again.")
OPERATION_NOT_SUPPORTED = ("The chatCompletion operation does not work with the specified model, {model}. Please "
                           "choose different model and try again. You can learn more about which models can be used "
                           "with each operation here: https://go.microsoft.com/fwlink/?linkid=2197993.")
PROMPT_FILTERED = ("The response was filtered due to the prompt triggering Azure OpenAI's content management policy. "
                   "Please modify your prompt and retry. To learn more about our content filtering policies please "
                   "read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766")
FILTER_RESULTS = {"hate": {"filtered": False, "severity": "safe"}, "self_harm": {"filtered": False, "severity": "safe"},
                  "sexual": {"filtered": False, "severity": "safe"}, "violence": {"filtered": True, "severity": "high"}}
SAFE = {"filtered": False, "severity": "safe"}
PROMPT_RESULTS = {"hate": SAFE, "jailbreak": {"filtered": False, "detected": False}, "self_harm": SAFE,
                  "sexual": SAFE, "violence": SAFE}
OUTPUT_RESULTS = {"hate": SAFE, "protected_material_code": {"filtered": False, "detected": False},
                  "protected_material_text": {"filtered": False, "detected": False}, "self_harm": SAFE,
                  "sexual": SAFE, "violence": SAFE}
FILTERED_OUTPUT_RESULTS = {**OUTPUT_RESULTS, "violence": {"filtered": True, "severity": "medium"}}
FILTERED_PROMPT = "#blocked-by-the-prompt-filter"  # a prompt with this in it is blocked
FILTERED_OUTPUT = "#cut-by-the-output-filter"  # an answer would echo it: cut there
# The operations the dated API calls per deployment.
_PER_DEPLOYMENT = re.compile(r"/openai/deployments/([^/]+)(/chat/completions|/completions|/embeddings"
                             r"|/images/\w+|/audio/\w+)")


def azure_error(code: str, message: str, **more: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **more}}


def prompt_filtered_chat() -> dict[str, Any]:
    """Azure's chat completions answer (400) to a prompt its content filter blocks."""
    return {"error": {"message": PROMPT_FILTERED, "type": None, "param": "prompt", "code": "content_filter",
                      "status": 400, "innererror": {"code": "ResponsibleAIPolicyViolation",
                                                    "content_filter_result": FILTER_RESULTS}}}


def content_filter(source: str, results: dict[str, Any], length: int, blocked: bool = False) -> dict[str, Any]:
    """One entry of a Response's ``content_filters``."""
    return {"blocked": blocked, "source_type": source, "content_filter_raw": [], "content_filter_results": results,
            "content_filter_offsets": {"start_offset": 0, "end_offset": length, "check_offset": 0}}


def filtered_output(request: dict[str, Any]) -> Respond | None:
    """The answer to a prompt whose echo the output filter cuts: the text before the mark, and incomplete."""
    text = _last_user_text(request.get("input"))
    if FILTERED_OUTPUT not in text:
        return None
    return Respond(output=[message_item("Echo: " + text.split(FILTERED_OUTPUT)[0])], status="incomplete",
                   incomplete_details={"reason": "content_filter"})


class _ChatWithFilterResults(_Exchange):
    """An exchange whose chat completion answers carry Azure's content filter results for prompt and output."""

    async def json(self, payload: Any, status: int = 200) -> None:
        if status == 200 and isinstance(payload, dict) and payload.get("object") == "chat.completion":
            payload = {**payload, "choices": [{**choice, "content_filter_results": OUTPUT_RESULTS}
                                              for choice in payload["choices"]],
                       "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": PROMPT_RESULTS}]}
        await super().json(payload, status)

    async def chunks(self, chunks: list[bytes], content_type: str, **options: Any) -> bool:
        if content_type.startswith("text/event-stream"):
            first = {"choices": [], "created": 0, "id": "", "model": "", "object": "",
                     "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": PROMPT_RESULTS}]}
            chunks = [_sse(first), *map(_with_output_results, chunks)]
        return await super().chunks(chunks, content_type, **options)


def _sse(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


def _with_output_results(frame: bytes) -> bytes:
    """A chat chunk with the output's filter results on each choice that carries text or its end."""
    if not frame.startswith(b"data: {"):
        return frame
    payload = json.loads(frame[6:])
    for choice in payload["choices"]:
        if choice["delta"].get("content") or choice.get("finish_reason"):
            choice["content_filter_results"] = OUTPUT_RESULTS
    return _sse(payload)


class FakeAzureUpstream(FakeUpstream):
    """``dated``: the dated API (else v1). ``base_url`` is the resource's endpoint, as Azure's portal shows it."""

    def __init__(self) -> None:
        self.dated = False
        super().__init__()
        self.answer = filtered_output

    def annotated(self, request: dict, response: dict) -> dict:
        """Azure's content filter results: the prompt's, and the output's (blocked where the filter cut it)."""
        cut = (response.get("incomplete_details") or {}).get("reason") == "content_filter"
        output = "".join(part.get("text", "") for item in response["output"] if item.get("type") == "message"
                         for part in item["content"])
        return {**response, "content_filters": [
            content_filter("prompt", PROMPT_RESULTS, len(_last_user_text(request.get("input")))),
            content_filter("completion", FILTERED_OUTPUT_RESULTS if cut else OUTPUT_RESULTS, len(output),
                           blocked=cut)]}

    def reset(self) -> None:
        super().reset()
        self.azure_paths: list[str] = []  # every request's Azure path and query, in order
        self.deployments_called: list[str] = []  # the deployment of each model call

    @property
    def endpoint(self) -> str:
        return self.base_url.removesuffix("/v1")

    async def _route(self, ex: _Exchange, r: Recorded) -> None:
        self.azure_paths.append(r.path + ("?" + "&".join(f"{k}={v}" for k, v in r.query.items()) if r.query else ""))
        bearer = r.headers.get("authorization", "")
        key = r.headers.get("api-key") or (bearer.removeprefix("Bearer ") if not self.dated else None)
        if key != AZURE_KEY:
            await ex.json(azure_error("401", ACCESS_DENIED), 401)
            return
        path = self._openai_path(r)
        if path is None:
            await ex.json(azure_error("404", "Resource not found"), 404)
            return
        if path is False:
            await ex.json(azure_error("DeploymentNotFound", DEPLOYMENT_NOT_FOUND), 404)
            return
        model = r.json.get("model") if isinstance(r.json, dict) else None
        if r.method == "POST" and path.endswith(("/chat/completions", "/responses")) and isinstance(r.json, dict) \
                and FILTERED_PROMPT in (_chat_text(r.json.get("messages") or []) if path.endswith("/completions")
                                        else _last_user_text(r.json.get("input"))):
            await ex.json(prompt_filtered_chat(), 400)
            return
        if path.endswith("/chat/completions") and model in self.responses_only:
            await ex.json(azure_error("OperationNotSupported", OPERATION_NOT_SUPPORTED.format(model=model)), 400)
            return
        r.path = path
        if path == "/v1/chat/completions":
            ex = _ChatWithFilterResults(ex.fake, ex.receive, ex.send)
        await super()._route(ex, r)

    def _openai_path(self, r: Recorded) -> str | bool | None:
        """The OpenAI path of an Azure request (None: no such path; False: no such deployment); on the dated API
        the path's deployment becomes the body's model, as Azure serves the deployment whatever the body says."""
        version = r.query.get("api-version")
        if not self.dated:
            if not r.path.startswith("/openai/v1/") or version not in (None, "preview", "latest"):
                return None
            model = r.json.get("model") if isinstance(r.json, dict) else \
                _parse_multipart(r.body, r.headers.get("content-type", ""))[0].get("model")  # an upload's form
            return self._deployed(r, model, "/v1" + r.path.removeprefix("/openai/v1"))
        if version is None or not DATED_VERSION.fullmatch(version) or not r.path.startswith("/openai/") \
                or r.path.startswith("/openai/v1/"):
            return None
        per_deployment = _PER_DEPLOYMENT.fullmatch(r.path)
        if per_deployment:
            deployment, operation = per_deployment.groups()
            if isinstance(r.json, dict):
                r.json = {**r.json, "model": deployment}
            return self._deployed(r, deployment, "/v1" + operation)
        if r.path.startswith("/openai/deployments/"):
            return None
        return self._deployed(r, r.json.get("model") if isinstance(r.json, dict) else None,
                              "/v1" + r.path.removeprefix("/openai"))

    def _deployed(self, r: Recorded, deployment: str | None, path: str) -> str | bool:
        """``path``, when the request names a deployment that exists (or is no model call)."""
        if deployment is None:
            return path
        self.deployments_called.append(deployment)
        return path if deployment in DEPLOYMENTS else False
