"""The HTTP application: routes stay short and hand off to chat and passthrough."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any
from urllib.parse import unquote

import orjson
from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from . import __version__, logs, metrics, origins
from .auth import OPEN_PATHS, PROBE_METHODS, ProxyKeyMiddleware
from .answers import serve_translated
from .chat_runs import ChatRuns
from .config import Config, load_config
from .errors import (ClientError, InvalidRequest, NoUpstreamForModel, ProxyError, UpstreamNotFound, error_response,
                     json_response)
from .health import Readiness
from .memory import caller_key, open_store
from .middleware import InFlight, ObserveMiddleware
from .models import ModelRoute, ModelTable
from .passthrough import (first_headers, has_body, header, open_forward, raw_path, read_body, relay_read,
                          relay_streaming, upstream_path)
from .plan import plan_to_chat, plan_translated
from .reattach import open_runs
from .responses_answers import serve_run, serve_to_chat
from .stored_responses import StoredResponse, deleted, input_item_page, open_response_store
from .streaming import until_disconnect
from .translate import ReasoningSeal, check_nesting, says_chat_only, says_responses_only, with_fixed_params
from .upstream import (ERROR_BODY_LIMIT, Upstream, UpstreamResponse, is_web_page_404, read_json, upstream_error,
                       url_secrets, without_credentials, wrong_path)

log = logging.getLogger("proxy")

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]
SETTLE_SECONDS = 5.0
GC_YOUNG_THRESHOLD = 50_000  # allocations between young collections (Python's default: 700)
# Response headers a browser app may read (CORS): the request id and what the proxy changed.
EXPOSED_HEADERS = ["x-request-id", "x-upstream-request-id", "x-proxy-mode", "x-proxy-dropped-params",
                   "x-proxy-adjusted-params", "x-proxy-fallback"]


class Proxy:
    """Everything a request needs: configuration, the model table (with the upstreams), the reasoning store."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.models = ModelTable(config)
        self.reasoning_store = open_store(config.reasoning)
        self.stored_responses = open_response_store(config.to_chat)
        self.chat_runs = ChatRuns(config.to_chat.background_runs, config.to_chat.background_ttl,
                                  config.to_chat.background_event_bytes)
        # Seals reasoning items served through chat. A random key unless configured: then a seal made by another
        # process (another worker, or before a restart) cannot be opened, and the item's own text serves.
        key = config.to_chat.reasoning_key
        self.reasoning_seal = ReasoningSeal(key.encode() if key else secrets.token_bytes(32))
        # Background runs kept for a client's retry (none kept with a window of 0).
        self.runs = open_runs(config.background.reattach_window, config.background.max_kept_runs,
                              config.reasoning.redis_url)

    async def chat(self, request: Request) -> Response:
        encoding = header(first_headers(request), "content-encoding").strip().lower()
        if encoding not in ("", "identity"):  # the model must be read to route the request
            raise ClientError(415, f"A compressed request body (Content-Encoding: {encoding:.40}) is not supported "
                              "here; send the JSON uncompressed.", code="unsupported_content_encoding")
        body, chat = await read_json_object(request, self.config.server.max_body_bytes)
        model = chat.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("you must provide a model parameter", "model")
        record = logs.current()
        record.model, record.stream = model, chat.get("stream") is True
        if log.isEnabledFor(logging.DEBUG):
            log.debug("chat request %s: %s", record.request_id, body[:4000].decode("utf-8", "replace"))
        real_model, fixed = self.models.resolve(model)
        if real_model != model or fixed:
            chat = {**chat, **fixed, "model": real_model}
            body = orjson.dumps(chat)
        return await self._with_fallback(model, chat, body, lambda chat, body, can_fall_back:
                                         self._chat(request, chat, body, can_fall_back))

    async def _with_fallback(self, asked: str, payload: dict[str, Any], body: bytes,
                             serve: Callable[[dict[str, Any], bytes, bool], Awaitable[Response]]) -> Response:
        """``serve``'s answer to the request (``payload``, for the real model, and its ``body``); when it fails
        before the answer begins in a way another model may mend, the answer of the model's configured fallback.
        ``serve``'s last argument says whether such a failure must be raised rather than relayed."""
        fallback = self.models.settings(payload["model"]).fallback
        try:
            return await serve(payload, body, bool(fallback))
        except ProxyError as exc:
            if not fallback or not exc.warrants_fallback:
                raise
            log.warning("model %s failed (%s %s); serving the request with fallback model %s",
                        asked, exc.status, exc.message, fallback)
        logs.current().fallback = fallback
        payload = {**payload, "model": fallback}
        response = await serve(payload, orjson.dumps(payload), False)
        response.headers["x-proxy-fallback"] = fallback
        return response

    async def _chat(self, request: Request, chat: dict[str, Any], body: bytes, can_fall_back: bool) -> Response:
        model = chat["model"]
        route = self.models.route(model)
        if route.direction == "to_responses":
            return await self.translate(request, chat, route)
        logs.current().mode = "passthrough"
        forwarded = open_forward(route.upstream, request, "/chat/completions", body, self.config.server.max_body_bytes,
                                 settings=route.settings)
        response = await until_disconnect(request.receive, forwarded)
        if response.status_code < 400:
            return relay_streaming(response, {"x-proxy-mode": "passthrough"})
        payload, raw = await read_json(response)
        if self.models.auto_detect and says_responses_only(payload, raw.decode("utf-8", "replace"), chat):
            translated = await self.translate(request, chat, route._replace(direction="to_responses"))
            if translated.status_code < 400:  # the other API served it: now the model is known to need it
                self.models.learn_responses_only(model)
            return translated
        error = upstream_error(response, payload, raw)
        # An error too large to relay goes as its gist; a URL that leads nowhere, as the URL called.
        if (can_fall_back and error.warrants_fallback) or response.cut or isinstance(error, UpstreamNotFound):
            raise error
        return relay_read(response, raw)

    async def translate(self, request: Request, chat: dict[str, Any], route: ModelRoute) -> Response:
        """The translated path, one stage after another: plan the calls, then run them and write the answer."""
        logs.current().mode = "translated"
        plan = await plan_translated(route, chat, request, self.config, self.reasoning_store)
        return await serve_translated(plan, request, self.config, self.runs)

    async def responses(self, request: Request) -> Response:
        """``POST /v1/responses``: passed through, or served through the upstream's chat endpoint for a chat-only
        model (configured, learned, or found out now: the upstream has no ``/v1/responses`` for it). An alias or
        effort variant is resolved, and a configured fallback model serves when the model fails, as for chat."""
        body, payload = await read_json_object(request, self.config.server.max_body_bytes)
        model = payload.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("Missing required parameter: 'model'.", "model", "missing_required_parameter")
        record = logs.current()
        record.model, record.stream = model, payload.get("stream") is True
        real_model, fixed = self.models.resolve(model)
        if real_model != model or fixed:
            payload = with_fixed_params(payload, real_model, fixed)
            body = orjson.dumps(payload)
        return await self._with_fallback(model, payload, body, lambda payload, body, can_fall_back:
                                         self._responses(request, payload, body, can_fall_back))

    async def _responses(self, request: Request, payload: dict[str, Any], body: bytes,
                         can_fall_back: bool) -> Response:
        model = payload["model"]
        route = self.models.responses_route(model)
        previous = payload.get("previous_response_id")
        # Whose responses this request may see and makes: worked out where a response of ours is involved.
        owner = caller_key(first_headers(request)) if isinstance(previous, str) or route.direction == "to_chat" \
            else None
        stored = await self.stored_responses.get(previous, owner) if isinstance(previous, str) else None
        running = self.chat_runs.get(previous, owner) if stored is None and isinstance(previous, str) else None
        if running is not None and not running.ended:
            raise InvalidRequest(f"Previous response with id '{previous:.100}' is still running in the background; "
                                 "continue it once it has ended.", "previous_response_id", "previous_response_running")
        if route.direction == "to_chat" or stored is not None:  # a response of ours is continued as it was made
            return await self.to_chat(request, payload, route, stored, owner)
        logs.current().mode = "passthrough"
        forwarded = open_forward(route.upstream, request, "/responses", body, self.config.server.max_body_bytes,
                                 settings=route.settings)
        response = await until_disconnect(request.receive, forwarded)
        if response.status_code < 400:
            return relay_streaming(response)
        error_payload, raw = await read_json(response)
        if self.models.chat_auto_detect and \
                says_chat_only(response.status_code, error_payload, raw.decode("utf-8", "replace"), payload):
            return await self.to_chat(request, payload, route, None, owner, learn=True)
        if is_web_page_404(response):
            raise wrong_path(response, raw)
        error = upstream_error(response, error_payload, raw)
        if (can_fall_back and error.warrants_fallback) or response.cut:  # too large to relay: its gist
            raise error
        return relay_read(response, raw)

    async def to_chat(self, request: Request, payload: dict[str, Any], route: ModelRoute,
                      stored: StoredResponse | None, owner: str | None, learn: bool = False) -> Response:
        """A Responses request served through chat, one stage after another: plan the call, then run it and
        write the answer, for ``owner`` (:func:`~proxy.memory.caller_key`; None: not worked out yet). With
        ``learn``, the model is remembered as chat-only once the chat endpoint accepts the request: that proves the
        model is served there, however its answer then ends (a stream that breaks mid-way, or a whole answer that
        does, says nothing about where the model is served)."""
        logs.current().mode = "translated"
        history = stored.conversation() if stored is not None else None
        if owner is None:
            owner = caller_key(first_headers(request))
        plan = plan_to_chat(route._replace(direction="to_chat"), payload, self.config, history, self.reasoning_seal,
                            owner)
        accepted = partial(self.models.chat_only.learn, payload["model"]) if learn else None
        return await serve_to_chat(plan, request, self.config, self.stored_responses, self.chat_runs, accepted)

    async def stored_response(self, request: Request, path: str) -> Response:
        """``GET`` / ``DELETE /v1/responses/{id}`` and ``GET .../input_items`` for a response this proxy made
        through chat (a background one while it runs, too); any other id passes through to the upstream that made
        it."""
        parts = path.strip("/").split("/")
        response_id, owner = unquote(parts[1]), caller_key(first_headers(request))
        run = self.chat_runs.get(response_id, owner)
        if run is not None:
            logs.current().mode = "translated"
            if len(parts) == 3:
                return json_response(input_item_page(StoredResponse(run.response, run.input_items, []),
                                                     dict(request.query_params)))
            if request.method == "GET":
                return serve_run(run, dict(request.query_params), self.config)
            await run.stop("cancel")  # deleting a response that runs ends it
            self.chat_runs.forget(run)
        stored = await self.stored_responses.get(response_id, owner)
        if stored is None:
            return json_response(deleted(response_id)) if run is not None else await self.forward(request, path)
        logs.current().mode = "translated"
        if len(parts) == 3:
            return json_response(input_item_page(stored, dict(request.query_params)))
        if request.method == "DELETE":
            await self.stored_responses.delete(stored.response["id"])
            return json_response(deleted(stored.response["id"]))
        if request.query_params.get("stream") == "true":
            raise InvalidRequest(f"Response {response_id} was not created with background=true, or its events are "
                                 "no longer kept: it cannot be streamed.", "stream", "invalid_value")
        return json_response(stored.response)

    async def cancel_response(self, request: Request, path: str) -> Response:
        """``POST /v1/responses/{id}/cancel``: a background response this proxy runs through chat is cancelled
        (one that has ended is answered as it ended); another id passes through to the upstream that made it."""
        response_id, owner = unquote(path.strip("/").split("/")[1]), caller_key(first_headers(request))
        run = self.chat_runs.get(response_id, owner)
        if run is not None:
            logs.current().mode = "translated"
            await run.stop("cancel")
            return json_response(run.response)
        stored = await self.stored_responses.get(response_id, owner)
        if stored is None:
            return await self.forward(request, path)
        if stored.response.get("background") is not True:
            raise InvalidRequest("Cannot cancel a synchronous response.")
        return json_response(stored.response)  # ended, and its run forgotten since

    async def model_list(self, request: Request) -> Response:
        """The model list for pickers: every upstream's models, aliases and effort variants.

        With several upstreams, the lists are asked for at once and merged in upstream order, each
        upstream contributing the models the proxy routes to it. One that fails is left out (and
        logged); only when none answers with a list does its answer reach the client as it came.
        """
        logs.current().mode = "passthrough"
        # A body (rare on a GET) is read once, so that every upstream can be sent it.
        body = await read_body(request, self.config.server.max_body_bytes) if has_body(request) else None
        results = await asyncio.gather(*(self._model_list(upstream, request, body)
                                         for upstream in self.models.upstreams), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, ProxyError):
                raise result  # a bug of ours, not an upstream's failure
        listed, unlisted = [], []
        for upstream, result in zip(self.models.upstreams, results):
            (listed if isinstance(result, tuple) and result[1] is not None else unlisted).append((upstream, result))
        if not listed:  # nothing to merge: the first upstream's answer, as it came
            for _, result in unlisted[1:]:
                if isinstance(result, tuple):
                    result[0].close()
            first = results[0]
            if isinstance(first, BaseException):
                raise first
            response, _, raw = first
            if response.status_code >= 400:
                return await relay_or_wrong_path(response)
            return relay_read(response, raw)
        for upstream, result in unlisted:
            log.warning("upstream %s gave no model list (%s); listing the other upstreams' models",
                        upstream.config.name, _listing_failure(result))
            if isinstance(result, tuple):
                result[0].close()
        models: dict[str, dict[str, Any]] = {}
        for upstream, (_, payload, _) in listed:
            for model in payload["data"]:
                model_id = model.get("id") if isinstance(model, dict) else None
                if isinstance(model_id, str) and model_id not in models and self._routes_to(model_id, upstream):
                    models[model_id] = model
        response, payload, _ = listed[0][1]
        merged = with_variants({**payload, "data": list(models.values())}, self.models, self.config)
        return relay_read(response, orjson.dumps(merged), "application/json")

    async def _model_list(self, upstream: Upstream, request: Request,
                          body: bytes | None) -> tuple[UpstreamResponse, Any, bytes]:
        """One upstream's answer to ``GET /models``, its list (None unless it is a model list) and body.

        An error answer is returned unread, to be relayed as it is.
        """
        response = await open_forward(upstream, request, "/models", body, self.config.server.max_body_bytes)
        if response.status_code >= 400:
            return response, None, b""
        payload, raw = await read_json(response, MODEL_LIST_LIMIT, whole=True)
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
            return response, None, raw
        return response, payload, raw

    def _routes_to(self, model: str, upstream: Upstream) -> bool:
        try:
            return self.models.upstream_for(model) is upstream
        except NoUpstreamForModel:
            return False

    async def forward(self, request: Request, path: str) -> Response:
        """Pass a request through; one that names no model may find its object on a later upstream.

        A stored object (``GET /v1/responses/{id}``, a file, a batch) lives on the upstream that made
        it. With several upstreams, a request routed by no model goes to each in turn while they answer
        404, as long as its body can be sent again; the first other answer, or the last 404, is relayed.
        """
        logs.current().mode = "passthrough"
        if has_body(request):
            origins.refuse_page_forms(first_headers(request))
        candidates, body, model = await self._route_forward(request)
        limit = self.config.server.max_body_bytes
        settings = self.models.settings(model) if model else None
        resendable = body is not None or not has_body(request)
        response = await open_forward(candidates[0], request, path, body, limit, settings=settings)
        for upstream in candidates[1:]:
            if response.status_code != 404 or not resendable:
                break
            await response.read(ERROR_BODY_LIMIT)  # read to its end, so the connection is kept for reuse
            response = await open_forward(upstream, request, path, body, limit, settings=settings)
        return await relay_or_wrong_path(response)

    async def _route_forward(self, request: Request) -> tuple[list[Upstream], bytes | None, str | None]:
        """The upstreams to try, in order, the body if it was read, and the model it names if it was routed by it.

        With several upstreams, a JSON request goes by its ``model`` to the one serving it; everything
        else to each upstream in turn. Reading the body costs nothing extra for these requests: JSON
        bodies are small and bounded by ``max_body_bytes``, and the bytes are sent on unchanged.
        """
        # Azure reads the model of a JSON body too: its deployment may be named differently, or be part of the path.
        if (len(self.models.upstreams) == 1 and self.models.upstreams[0].azure is None) or request.method != "POST" or \
                not header(first_headers(request), "content-type").startswith("application/json"):
            return self.models.upstreams, None, None
        body = await read_body(request, self.config.server.max_body_bytes)
        try:
            model = orjson.loads(body).get("model")
        except (orjson.JSONDecodeError, AttributeError):
            model = None
        if not isinstance(model, str) or not model:
            return self.models.upstreams, body, None
        logs.current().model = model
        if len(self.models.upstreams) == 1:
            return self.models.upstreams, body, model
        return [self.models.upstream_for(model)], body, model


MODEL_LIST_LIMIT = 16 * 1024 * 1024


async def read_json_object(request: Request, limit: int) -> tuple[bytes, dict[str, Any]]:
    """A JSON request's body and the object it holds; a clear 400 (or 413, 415) for anything else."""
    origins.require_json(first_headers(request))
    body = await read_body(request, limit)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"We could not parse the JSON body of your request ({exc.msg} at position {exc.pos}). "
            "The body must be a JSON object.", code="invalid_json") from None
    if not isinstance(payload, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    check_nesting(payload)
    return body, payload


# /responses/{id} and /responses/{id}/input_items, as the pass-through path writes them (percent-encoded once).
STORED_RESPONSE = re.compile(r"/responses/[^/]+(?:/input_items)?")
CANCEL_RESPONSE = re.compile(r"/responses/[^/]+/cancel")


def serves_responses(request: Request, path: str) -> bool:
    """Whether ``path`` is ``POST /v1/responses`` with an uncompressed JSON body (others pass through)."""
    return request.method == "POST" and path == "/responses" and \
        header(first_headers(request), "content-encoding").strip().lower() in ("", "identity") and \
        header(first_headers(request), "content-type").startswith("application/json")


async def relay_or_wrong_path(response: UpstreamResponse) -> Response:
    """An upstream answer, relayed; but a 404 that is no JSON (a web server's page, not an API's error) says
    which URL leads nowhere, in an OpenAI-style body."""
    if not is_web_page_404(response):
        return relay_streaming(response)
    raise wrong_path(response, await response.read(ERROR_BODY_LIMIT))


# A dated snapshot (o3-pro-2025-06-10, gpt-4-0613) gets no effort variants: its base name has them, and with
# an aggregator's hundreds of models a variant of each would drown the picker.
SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{4})$")


def with_variants(listing: dict[str, Any], table: ModelTable, config: Config) -> dict[str, Any]:
    """The model list with aliases, and effort variants (o3-pro-low) of the translated models' base names."""
    models = [model for model in listing["data"] if isinstance(model, dict)]
    known = {model.get("id") for model in models}
    extra = []
    for name, alias in config.aliases.items():
        if name not in known:
            extra.append({"id": name, "object": "model", "created": 0, "owned_by": "responses-proxy"})
            known.add(name)
    for model in models:
        model_id = model.get("id")
        if not isinstance(model_id, str) or not table.translates(model_id) or SNAPSHOT.search(model_id):
            continue
        for effort in config.translate.list_variants:
            variant = f"{model_id}-{effort}"
            if variant not in known:
                extra.append({**model, "id": variant})
                known.add(variant)
    return {**listing, "data": models + extra}


def _listing_failure(result: Any) -> str:
    """Why an upstream gave no model list: its error (other exceptions are raised before), status or body."""
    if isinstance(result, ProxyError):
        return result.message
    response = result[0]
    return f"HTTP {response.status_code}" if response.status_code >= 400 else "not a model list"


def upstream_lines(config: Config) -> list[str]:
    """What the start-up log says about each upstream: the URL it calls (without secrets) and for which models."""
    lines = []
    for upstream in config.upstreams:
        line = f"upstream {upstream.name}: {without_credentials(upstream.base_url)} " \
               f"for models {', '.join(upstream.models)}"
        if upstream.chat_only:
            line += " (chat only: /v1/responses is served through /chat/completions)"
        if upstream.api_path_added:
            line += " (the base URL given has no path: the API is taken to be under /v1)"
        lines.append(line)
    return lines


def tune_garbage_collection() -> None:
    """Fewer, cheaper cyclic collections: a request allocates thousands of short-lived containers.

    Objects alive at start-up (the app, its libraries) are set aside for good, so a full collection
    no longer walks them; and a young collection waits for more allocations than Python's default 700.
    Reference counting still frees nearly everything at once; only cycles wait a little longer.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def names_endpoint(path: str, endpoint: str) -> bool:
    """Whether ``path`` ends in ``endpoint``, or in it and one slash: the pass-through drops that slash too."""
    return path.removesuffix("/").endswith(endpoint)


def is_chat(scope: Scope) -> bool:
    """Judged on the path as sent: ``chat%2Fcompletions`` is no chat request but a path that is refused."""
    return scope["type"] == "http" and scope["method"] == "POST" and \
        names_endpoint(raw_path(scope), "/chat/completions")


class Endpoint:
    """A route's handler as a plain ASGI endpoint: the request in, an answer out, any failure as an OpenAI-style
    error (:func:`~proxy.errors.error_response`).

    Starlette runs an ASGI endpoint as it is: no request/response adapter and no dependency layer per request,
    which cost more than the translation itself on the chat path.
    """

    __slots__ = ("handle",)

    def __init__(self, handle: Callable[[Request], Awaitable[Response]]) -> None:
        self.handle = handle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            response = await self.handle(Request(scope, receive))
        except Exception as exc:
            response = error_response(exc)
        await response(scope, receive, send)


class ChatRoute(Route):
    """Chat requests, on any path ending in ``/chat/completions`` (:func:`is_chat`), with a trailing slash allowed."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        return (Match.FULL, {}) if is_chat(scope) else (Match.NONE, {})


def create_app(config: Config) -> FastAPI:
    proxy = Proxy(config)
    readiness = Readiness(proxy.models.upstreams, config.server.readiness_check)
    logs.register_secrets([*config.server.api_keys, *(secret for upstream in config.upstreams for secret in upstream.secrets),
                           *(secret for upstream in config.upstreams for secret in url_secrets(upstream.base_url))])

    inflight = InFlight()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for line in upstream_lines(config):
            log.info(line)
        tune_garbage_collection()
        await proxy.stored_responses.open()
        yield
        # Requests the server cancelled after the grace period end their answers with an error first.
        await inflight.settle(SETTLE_SECONDS)
        if proxy.runs is not None:
            await proxy.runs.aclose()
        await proxy.chat_runs.aclose()
        await proxy.models.aclose()
        if proxy.reasoning_store is not None:
            await proxy.reasoning_store.aclose()
        await proxy.stored_responses.aclose()

    async def describe(_: Request) -> Response:
        return json_response({
            "name": "responses-proxy",
            "version": __version__,
            "description": "OpenAI-compatible proxy: Chat Completions requests for Responses-only models "
                           "are translated to the Responses API; everything else passes through.",
            "upstream": without_credentials(config.upstream.base_url),
            "upstreams": [{"name": upstream.name, "base_url": without_credentials(upstream.base_url),
                           "models": upstream.models} for upstream in config.upstreams],
            "translated_models": config.translate.models if not config.translate.all_models else ["*"],
        })

    async def healthz(_: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(_: Request) -> Response:
        ready, upstreams = await readiness.status()
        return json_response({"status": "ready" if ready else "not ready", "check": config.server.readiness_check,
                              "upstreams": upstreams}, 200 if ready else 503)

    async def metrics_page(_: Request) -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    async def dispatch(request: Request) -> Response:
        path = upstream_path(raw_path(request.scope))  # an encoded slash is refused, not made a separator
        if names_endpoint(path, "/models") and request.method == "GET":
            return await proxy.model_list(request)
        if serves_responses(request, path):
            return await proxy.responses(request)
        if request.method in ("GET", "DELETE") and STORED_RESPONSE.fullmatch(path):
            return await proxy.stored_response(request, path)
        if request.method == "POST" and CANCEL_RESPONSE.fullmatch(path):
            return await proxy.cancel_response(request, path)
        return await proxy.forward(request, path)

    routes = [
        ChatRoute("/chat/completions", Endpoint(proxy.chat)),  # first: the hot path is matched before the rest
        Route("/", Endpoint(describe), methods=PROBE_METHODS),
        Route("/healthz", Endpoint(healthz), methods=PROBE_METHODS),
        Route("/readyz", Endpoint(readyz), methods=PROBE_METHODS),
        Route("/metrics", Endpoint(metrics_page), methods=PROBE_METHODS),
        Route("/{path:path}", Endpoint(dispatch), methods=_METHODS),
    ]
    # The proxy's middleware, outermost first: the observer sees every answer and refuses a page at an origin not
    # allowed before anything else; CORS headers go on 401s too. A layer with nothing to do is left out.
    open_paths = OPEN_PATHS if config.server.metrics_require_key else OPEN_PATHS | {"/metrics"}
    middleware = [
        Middleware(ObserveMiddleware, inflight=inflight, allowed_origins=config.server.cors_origins),
        *([Middleware(CORSMiddleware, allow_origins=config.server.cors_origins, allow_methods=["*"],
                      allow_headers=["*"], expose_headers=EXPOSED_HEADERS, max_age=600)]
          if config.server.cors_origins else []),
        *([Middleware(ProxyKeyMiddleware, keys=config.server.api_keys, open_paths=open_paths)]
          if config.server.api_keys else []),
    ]
    # The proxy has its own logs and metrics; FastAPI's OpenTelemetry hook would look for providers per request.
    app = FastAPI(title="responses-proxy", version=__version__, lifespan=lifespan, routes=routes,
                  middleware=middleware, docs_url=None, redoc_url=None, openapi_url=None,
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    app.state.proxy = proxy

    async def failed(_: Request, exc: Exception) -> Response:
        return error_response(exc)

    # Failures outside the endpoints: a method a route does not take (405), a bug in a middleware (500).
    for kind in (HTTPException, Exception):  # Starlette looks each kind up by its own class
        app.add_exception_handler(kind, failed)
    return app


def app_from_env() -> FastAPI:
    """The app for ``uvicorn --factory proxy.app:app_from_env``, as each ``--workers`` process builds it.

    The configuration comes from ``PROXY_CONFIG`` and the environment, logging
    from ``PROXY_LOG_LEVEL`` and ``PROXY_LOG_FORMAT``, all set by the command line.
    """
    logs.setup_logging(os.environ.get("PROXY_LOG_LEVEL", "info"), os.environ.get("PROXY_LOG_FORMAT", "auto"))
    return create_app(load_config(os.environ.get("PROXY_CONFIG") or None))
