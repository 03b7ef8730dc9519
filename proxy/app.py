"""The HTTP application: routes stay short and hand off to chat and passthrough."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from . import __version__
from .calls import Capabilities
from .chat import json_response, serve_translated
from .config import Config
from .errors import InvalidRequest, ProxyError, error_body
from .passthrough import open_forward, read_body, relay, upstream_path
from .routing import ModelRouter, says_responses_only
from .translate.request import MappingOptions, chat_to_responses
from .upstream import RETRYABLE_STATUSES, Upstream, read_json, upstream_error

log = logging.getLogger("proxy")

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]


class Proxy:
    """Everything a request needs: configuration, the upstream client, the model router."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.upstream = Upstream(config.upstream)
        self.router = ModelRouter(config.translate)
        self.capabilities = Capabilities()
        summary = config.reasoning.summary
        self.mapping = MappingOptions(reasoning_summary=None if summary == "off" else summary)

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
        model = chat.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("you must provide a model parameter", "model")
        fallback = self.config.model_settings(model).fallback
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
        response = await open_forward(self.upstream, request, "/chat/completions", body,
                                      self.config.server.max_body_bytes)
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
        translation = chat_to_responses(chat, self.mapping)
        return await serve_translated(self.config, self.upstream, self.capabilities, request, translation)

    async def forward(self, request: Request, path: str) -> Response:
        response = await open_forward(self.upstream, request, path, None, self.config.server.max_body_bytes)
        return relay(response)


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
            "upstream": config.upstream.base_url,
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
            return await proxy.forward(request, "/models")
        return await proxy.forward(request, upstream_path(path))

    return app
