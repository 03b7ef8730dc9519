"""The HTTP application: routes stay short and hand off to chat and passthrough."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from . import __version__
from .calls import Capabilities
from .chat import json_response, serve_translated, until_disconnect
from .config import Config
from .errors import InvalidRequest, ProxyError, error_body
from .passthrough import open_forward, read_body, relay, upstream_path
from .routing import ModelRouter, says_responses_only
from .memory import ReasoningMemory
from .translate.request import MappingOptions, chat_to_responses, check_nesting
from .translate.stream import Presentation
from .upstream import RETRYABLE_STATUSES, Upstream, read_json, upstream_error

log = logging.getLogger("proxy")

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]


class Proxy:
    """Everything a request needs: configuration, the upstream client, the model router."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.upstream = Upstream(config.upstream)
        self.router = ModelRouter(config.translate, config.aliases)
        self.capabilities = Capabilities()
        keep = config.reasoning.keep_encrypted and config.reasoning.memory_entries > 0
        self.memory = ReasoningMemory(config.reasoning.memory_entries, config.reasoning.memory_ttl) if keep else None

    async def chat(self, request: Request) -> Response:
        body = await read_body(request, self.config.server.max_body_bytes)
        try:
            chat = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(
                f"We could not parse the JSON body of your request ({exc.msg} at position {exc.pos}). "
                "The body must be a JSON object.", code="invalid_json") from None
        if not isinstance(chat, dict):
            raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
        check_nesting(chat)
        model = chat.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("you must provide a model parameter", "model")
        real_model, fixed = self.router.resolve(model)
        if real_model != model or fixed:
            chat = {**chat, **fixed, "model": real_model}
            body = orjson.dumps(chat)
        fallback = self.config.model_settings(real_model).fallback
        try:
            return await self._chat(request, chat, body)
        except ProxyError as exc:
            if not fallback or not fallback_worthy(exc):
                raise
            log.warning("model %s failed (%s %s); serving the request with fallback model %s",
                        model, exc.status, exc.message, fallback)
        chat = {**chat, "model": fallback}
        response = await self._chat(request, chat, orjson.dumps(chat))
        response.headers["x-proxy-fallback"] = fallback
        return response

    async def _chat(self, request: Request, chat: dict[str, Any], body: bytes) -> Response:
        model = chat["model"]
        if self.router.should_translate(model):
            return await self.translate(request, chat)
        response = await until_disconnect(request, open_forward(self.upstream, request, "/chat/completions", body,
                                                                self.config.server.max_body_bytes))
        if response.status_code < 400:
            return relay(response, {"x-proxy-mode": "passthrough"})
        payload, raw = await read_json(response)
        if self.router.auto_detect and says_responses_only(raw.decode("utf-8", "replace")):
            log.info("model %s is served only by the Responses API; translating it from now on", model)
            self.router.learn(model)
            return await self.translate(request, chat)
        if fallback_worthy(upstream_error(response.status_code, payload, raw)):
            raise upstream_error(response.status_code, payload, raw)
        return Response(raw, status_code=response.status_code, media_type=response.headers.get("content-type"))

    async def translate(self, request: Request, chat: dict[str, Any]) -> Response:
        config = self.config
        settings = config.model_settings(chat["model"])
        if settings.reasoning_effort and chat.get("reasoning_effort") is None:
            chat = {**chat, "reasoning_effort": settings.reasoning_effort}
        summary = None if config.reasoning.summary == "off" or self.capabilities.no_summary else config.reasoning.summary
        keep = self.memory is not None and chat["model"].lower() not in self.capabilities.no_encrypted_reasoning
        options = MappingOptions(
            reasoning_summary=summary,
            max_n=config.translate.max_n,
            require_search_tool=bool(settings.search_tool),
            keep_reasoning=keep,
            reasoning_lookup=self.memory.get if keep and self.memory is not None else None,
        )
        translation = chat_to_responses(chat, options)
        presentation = Presentation(
            reasoning=reasoning_output(request, config.reasoning.output),
            stop=translation.stop,
            sources_in_content=config.web_search.sources_in_content,
            progress=bool(settings.progress),
        )
        return await serve_translated(config, self.upstream, self.capabilities, self.memory, request, translation,
                                      presentation, settings)

    async def models(self, request: Request) -> Response:
        """The upstream's model list plus configured aliases and effort variants, for model pickers."""
        response = await open_forward(self.upstream, request, "/models", None, self.config.server.max_body_bytes)
        if response.status_code >= 400:
            return relay(response)
        payload, raw = await read_json(response, MODEL_LIST_LIMIT)
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
            return Response(raw, status_code=response.status_code, media_type=response.headers.get("content-type"))
        return json_response(with_variants(payload, self.router, self.config))

    async def forward(self, request: Request, path: str) -> Response:
        response = await open_forward(self.upstream, request, path, None, self.config.server.max_body_bytes)
        return relay(response)


MODEL_LIST_LIMIT = 16 * 1024 * 1024
REASONING_OUTPUT_HEADER = "x-proxy-reasoning-output"


def reasoning_output(request: Request, default: str) -> str:
    """The reasoning display for this request: a header may choose another than the configured one."""
    wanted = request.headers.get(REASONING_OUTPUT_HEADER, "").strip().lower()
    if not wanted:
        return default
    if wanted not in ("reasoning_content", "think", "none"):
        raise InvalidRequest(f"Header {REASONING_OUTPUT_HEADER} must be reasoning_content, think or none.",
                             REASONING_OUTPUT_HEADER)
    return wanted


def with_variants(listing: dict[str, Any], router: ModelRouter, config: Config) -> dict[str, Any]:
    models = [model for model in listing["data"] if isinstance(model, dict)]
    known = {model.get("id") for model in models}
    extra = []
    for name, alias in config.aliases.items():
        if name not in known:
            extra.append({"id": name, "object": "model", "created": 0, "owned_by": "responses-proxy"})
            known.add(name)
    for model in models:
        model_id = model.get("id")
        if not isinstance(model_id, str) or not router.should_translate(model_id):
            continue
        for effort in config.translate.list_variants:
            variant = f"{model_id}-{effort}"
            if variant not in known:
                extra.append({**model, "id": variant})
                known.add(variant)
    return {**listing, "data": models + extra}


def without_credentials(url: str) -> str:
    """``http://user:secret@host/v1`` -> ``http://host/v1``: a URL fit to show to clients."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def fallback_worthy(error: ProxyError) -> bool:
    """Failures a fallback model can help with: overload, outage, or a model that is not there."""
    if error.status in RETRYABLE_STATUSES:
        return True
    text = f"{error.code} {error.message}".lower()
    return error.status in (400, 404) and ("model_not_found" in text or "does not exist" in text
                                           or "overloaded" in text)


def create_app(config: Config) -> FastAPI:
    proxy = Proxy(config)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await proxy.upstream.aclose()

    app = FastAPI(title="responses-proxy", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.proxy = proxy

    @app.exception_handler(ProxyError)
    async def proxy_error(_: Request, exc: ProxyError) -> Response:
        return json_response(exc.body(), exc.status, exc.headers)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Response:
        return json_response(error_body(str(exc.detail), "invalid_request_error"), exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unexpected error while serving a request")
        return json_response(error_body("The proxy failed unexpectedly while handling this request.", "server_error",
                                        code="proxy_error"), 500)

    @app.get("/")
    async def describe() -> Response:
        return json_response({
            "name": "responses-proxy",
            "version": __version__,
            "description": "OpenAI-compatible proxy: Chat Completions requests for Responses-only models "
                           "are translated to the Responses API; everything else passes through.",
            "upstream": without_credentials(config.upstream.base_url),
            "translated_models": config.translate.models if not config.translate.all_models else ["*"],
        })

    @app.get("/healthz")
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.api_route("/{path:path}", methods=_METHODS)
    async def dispatch(request: Request) -> Response:
        path = request.url.path
        if path.endswith("/chat/completions") and request.method == "POST":
            return await proxy.chat(request)
        if path.endswith("/models") and request.method == "GET":
            return await proxy.models(request)
        return await proxy.forward(request, upstream_path(path))

    return app
