"""The HTTP application: routes stay short and hand off to chat and passthrough."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response

from . import __version__, logs, metrics
from .auth import OPEN_PATHS, ProxyKeyMiddleware
from .chat import json_response, serve_translated
from .config import Config, load_config
from .errors import InvalidRequest, ProxyError, error_body
from .health import Readiness
from .middleware import InFlight, ObserveMiddleware
from .passthrough import open_forward, read_body, relay, upstream_path
from .routing import ModelRouter, says_responses_only
from .translate.request import MappingOptions, chat_to_responses
from .upstream import Upstream, read_json
from .upstreams import Upstreams

log = logging.getLogger("proxy")

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]
SETTLE_SECONDS = 5.0
# Response headers a browser app may read (CORS): the request id and what the proxy changed.
EXPOSED_HEADERS = ["x-request-id", "x-upstream-request-id", "x-proxy-mode", "x-proxy-dropped-params",
                   "x-proxy-adjusted-params"]


class Proxy:
    """Everything a request needs: configuration, the upstream client, the model router."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.upstreams = Upstreams(config.upstreams)
        self.upstream = self.upstreams.default
        # What chat.py reads as `config.upstream` is the upstream serving the request.
        self._configs = {upstream.config.name: config.model_copy(update={"upstream": upstream.config})
                         for upstream in self.upstreams.all}
        self.router = ModelRouter(config.translate)
        summary = config.reasoning.summary
        self.mapping = MappingOptions(reasoning_summary=None if summary == "off" else summary,
                                      reasoning_effort=config.reasoning.effort)

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
        record = logs.current()
        record.model, record.stream = model, chat.get("stream") is True
        log.debug("chat request %s: %s", record.request_id, body[:4000].decode("utf-8", "replace"))
        upstream = self.upstreams.for_model(model)
        if self.router.should_translate(model):
            return await self.translate(request, chat)

        record.mode = "passthrough"
        response = await open_forward(upstream, request, "/chat/completions", body,
                                      self.config.server.max_body_bytes)
        if self.router.auto_detect and response.status_code in (400, 404):
            payload, raw = await read_json(response)
            if says_responses_only(raw.decode("utf-8", "replace")):
                log.info("model %s is served only by the Responses API; translating it from now on", model)
                self.router.learn(model)
                return await self.translate(request, chat)
            return Response(raw, status_code=response.status_code, media_type=response.headers.get("content-type"))
        return relay(response, {"x-proxy-mode": "passthrough"})

    async def translate(self, request: Request, chat: dict[str, Any]) -> Response:
        logs.current().mode = "translated"
        upstream = self.upstreams.for_model(chat["model"])
        translation = chat_to_responses(chat, self.mapping)
        return await serve_translated(self._configs[upstream.config.name], upstream, request.headers, translation)

    async def forward(self, request: Request, path: str) -> Response:
        logs.current().mode = "passthrough"
        upstream, body = await self._route_forward(request)
        response = await open_forward(upstream, request, path, body, self.config.server.max_body_bytes)
        return relay(response)

    async def _route_forward(self, request: Request) -> tuple[Upstream, bytes | None]:
        """With several upstreams, a JSON request goes by its ``model``; everything else to the first.

        Reading the body costs nothing extra for these requests: JSON bodies are
        small and bounded by ``max_body_bytes``, and the bytes are sent on unchanged.
        """
        if len(self.upstreams.all) == 1 or request.method != "POST" or \
                not request.headers.get("content-type", "").startswith("application/json"):
            return self.upstream, None
        body = await read_body(request, self.config.server.max_body_bytes)
        try:
            model = orjson.loads(body).get("model")
        except (orjson.JSONDecodeError, AttributeError):
            model = None
        if not isinstance(model, str) or not model:
            return self.upstream, body
        logs.current().model = model
        return self.upstreams.for_model(model), body


def create_app(config: Config) -> FastAPI:
    proxy = Proxy(config)
    readiness = Readiness(proxy.upstreams.all, config.server.readiness_check)
    logs.register_secrets([*config.server.api_keys, *(key for upstream in config.upstreams for key in upstream.keys)])

    inflight = InFlight()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        # Requests the server cancelled after the grace period end their answers with an error first.
        await inflight.settle(SETTLE_SECONDS)
        await proxy.upstreams.aclose()

    app = FastAPI(title="responses-proxy", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.proxy = proxy
    # Added innermost first: the observer sees every answer, CORS headers go on 401s too.
    open_paths = OPEN_PATHS if config.server.metrics_require_key else OPEN_PATHS | {"/metrics"}
    app.add_middleware(ProxyKeyMiddleware, keys=config.server.api_keys, open_paths=open_paths)
    if config.server.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=config.server.cors_origins, allow_methods=["*"],
                           allow_headers=["*"], expose_headers=EXPOSED_HEADERS, max_age=600)
    app.add_middleware(ObserveMiddleware, inflight=inflight)

    @app.exception_handler(ProxyError)
    async def proxy_error(_: Request, exc: ProxyError) -> Response:
        logs.current().error = str(exc.code or exc.type)
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
            "upstreams": [{"name": upstream.name, "base_url": upstream.base_url, "models": upstream.models}
                          for upstream in config.upstreams],
            "translated_models": config.translate.models if not config.translate.all_models else ["*"],
        })

    @app.get("/healthz")
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        ready, upstreams = await readiness.status()
        return json_response({"status": "ready" if ready else "not ready", "check": config.server.readiness_check,
                              "upstreams": upstreams}, 200 if ready else 503)

    @app.get("/metrics")
    async def metrics_page() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.api_route("/{path:path}", methods=_METHODS)
    async def dispatch(request: Request) -> Response:
        path = request.url.path
        if path.endswith("/chat/completions") and request.method == "POST":
            return await proxy.chat(request)
        if path.endswith("/models") and request.method == "GET":
            return await proxy.forward(request, "/models")
        return await proxy.forward(request, upstream_path(path))

    return app


def app_from_env() -> FastAPI:
    """The app for ``uvicorn --factory proxy.app:app_from_env``, as each ``--workers`` process builds it.

    The configuration comes from ``PROXY_CONFIG`` and the environment, logging
    from ``PROXY_LOG_LEVEL`` and ``PROXY_LOG_FORMAT``, all set by the command line.
    """
    logs.setup_logging(os.environ.get("PROXY_LOG_LEVEL", "info"), os.environ.get("PROXY_LOG_FORMAT", "auto"))
    return create_app(load_config(os.environ.get("PROXY_CONFIG") or None))
