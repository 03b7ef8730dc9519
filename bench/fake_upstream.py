"""A fake OpenAI upstream for the benchmarks, made as cheap as a Python server can be.

It is a raw asyncio protocol on uvloop with the httptools parser (no framework,
no ASGI), and every answer is rendered once and cached as bytes, so the proxy
under test, not this server, is what a benchmark measures.

POST .../responses          a Response JSON (reasoning item with summary + message),
                            or with ``"stream": true`` a Responses SSE stream of N events
POST .../chat/completions   a chat.completion JSON, or a chunk stream of N events + [DONE]; for a model named
                            ``deepseek-*`` (a chat-only reasoning model) the same answer as the Responses one:
                            ``reasoning_content`` then ``content``, and a usage chunk at the end
GET  .../responses/{id}     a background run: ``in_progress`` until its think time has passed, then the Response
POST .../responses/{id}/cancel  the cancelled Response
POST /bench/config          JSON {"events", "think_ms", "silent_ms", "gap_ms", "refuse_background_stream"}: change
                            the defaults
POST /bench/release         end every silence now (the streams send the rest of their answer)
GET  /bench/stats           JSON {"requests", "responses", "chat", "connections", "open_connections",
                            "silent_streams"}
GET  /bench/completed       JSON {"at": time.monotonic() when the last answer was complete upstream}: the last
                            stream's end was written, or the last background run finished (one at a time)

Per request, the headers ``x-bench-events``, ``x-bench-think-ms``,
``x-bench-silent-ms`` and ``x-bench-gap-ms`` override the defaults. Think time
delays the whole answer; silent time holds a stream open after its first two
events (``response.created``, ``response.in_progress``) without sending a
byte, as a reasoning model does while it thinks. A gap sends a stream's events
one at a time, that far apart, as a model streaming its answer does (without
one, the whole stream goes out in one write and the proxy reads it in one go).

A request with ``"background": true`` is a background run (bench/completion_latency.py): streamed, it is the same
stream; not streamed, it is created ``queued`` and finishes after its think time, found by polling ``GET``. With
``refuse_background_stream`` set, a background request that asks for a stream gets the 400 of an upstream that
cannot stream it.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import time

import httptools
import orjson
import uvloop

from procs import raise_fd_limit

FRAME_EVENTS = 13  # the events of a Responses stream around its deltas, from response.created to response.completed
MIN_EVENTS = FRAME_EVENTS + 2  # the frame plus one delta of each kind
WORDS = ("The ", "quick ", "brown ", "fox ", "jumps ", "over ", "the ", "lazy ", "dog, ", "and ", "then ",
         "it ", "rests ", "in ", "the ", "warm ", "sun. ")
CREATED = 1757687055
RESPONSE_ID = "resp_68c42d0fb418819dbfa579f69406b49508fbf9b1584184ff"
REASONING_ID = "rs_68c42d1d0878819d8266007cd3d1402c08fbf9b1584184ff"
MESSAGE_ID = "msg_68c42d26866c819da8d5c606621c911608fbf9b1584184ff"
CHAT_ID = "chatcmpl-D8Z5oo6uDh67AD85p73ksdT1KxhE0"
# Chat requests for models named so get the reasoning model's answer (reasoning_chat_chunks): the chat-only
# upstream of the proxy's other direction, Responses clients served through chat.
CHAT_ONLY_PREFIX = "deepseek"
CHAT_ONLY_MODEL = "deepseek-reasoner"


class Settings:
    events = 200
    think_ms = 0.0
    silent_ms = 0.0
    gap_ms = 0.0
    refuse_background_stream = False


SETTINGS = ("events", "think_ms", "silent_ms", "gap_ms", "refuse_background_stream")


class Completed:
    """When the last answer was complete upstream (time.monotonic(): one clock for every process), and when the
    background run being polled finishes."""

    at = 0.0
    background_done = 0.0

# Streams held silent: the timer that resumes each, and what it will send.
SILENT: dict["UpstreamProtocol", tuple[asyncio.TimerHandle, bytes, bool]] = {}


class Stats:
    requests = 0
    responses = 0  # of which POST .../responses
    chat = 0  # of which POST .../chat/completions
    connections = 0  # accepted since start
    open_connections = 0
    silent_streams = 0


STATS = ("requests", "responses", "chat", "connections", "open_connections", "silent_streams")


def _words(count: int) -> list[str]:
    return [WORDS[i % len(WORDS)] for i in range(count)]


def _usage(output_tokens: int) -> dict:
    return {"input_tokens": 13, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": output_tokens // 2}, "total_tokens": 13 + output_tokens}


def response_object(model: str, summary: str, text: str, status: str = "completed", usage: dict | None = None) -> dict:
    """A Response as OpenAI sends it (field set of a real o3/gpt-5 answer)."""
    output = [] if status in ("in_progress", "queued") else [
        {"id": REASONING_ID, "type": "reasoning", "summary": [{"type": "summary_text", "text": summary}]},
        {"id": MESSAGE_ID, "type": "message", "status": "completed", "role": "assistant",
         "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}]},
    ]
    return {
        "id": RESPONSE_ID, "object": "response", "created_at": CREATED, "status": status, "background": False,
        "error": None, "incomplete_details": None, "instructions": None, "max_output_tokens": None,
        "max_tool_calls": None, "model": model, "output": output, "parallel_tool_calls": True,
        "previous_response_id": None, "prompt_cache_key": None, "reasoning": {"effort": "medium", "summary": "auto"},
        "safety_identifier": None, "service_tier": "default", "store": False, "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"}, "tool_choice": "auto", "tools": [],
        "top_logprobs": 0, "top_p": 1.0, "truncation": "disabled", "usage": usage, "user": None, "metadata": {},
    }


def responses_events(events: int, model: str = "o3-pro-2025-06-10") -> list[dict]:
    """The real event sequence of a reasoning answer, ``events`` events long in total."""
    deltas = max(events, MIN_EVENTS) - FRAME_EVENTS
    thinking, answer = _words(deltas // 2), _words(deltas - deltas // 2)
    summary, text = "".join(thinking), "".join(answer)
    reasoning_item = {"id": REASONING_ID, "type": "reasoning", "summary": []}
    message_item = {"id": MESSAGE_ID, "type": "message", "status": "in_progress", "content": [], "role": "assistant"}
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
    final = response_object(model, summary, text, usage=_usage(deltas))
    sequence = [
        {"type": "response.created", "response": response_object(model, "", "", "in_progress")},
        {"type": "response.in_progress", "response": response_object(model, "", "", "in_progress")},
        {"type": "response.output_item.added", "output_index": 0, "item": reasoning_item},
        {"type": "response.reasoning_summary_part.added", "item_id": REASONING_ID, "output_index": 0,
         "summary_index": 0, "part": {"type": "summary_text", "text": ""}},
        *({"type": "response.reasoning_summary_text.delta", "item_id": REASONING_ID, "output_index": 0,
           "summary_index": 0, "delta": word, "obfuscation": "obWDa"} for word in thinking),
        {"type": "response.reasoning_summary_text.done", "item_id": REASONING_ID, "output_index": 0,
         "summary_index": 0, "text": summary},
        {"type": "response.reasoning_summary_part.done", "item_id": REASONING_ID, "output_index": 0,
         "summary_index": 0, "part": {"type": "summary_text", "text": summary}},
        {"type": "response.output_item.done", "output_index": 0, "item": final["output"][0]},
        {"type": "response.output_item.added", "output_index": 1, "item": message_item},
        {"type": "response.content_part.added", "item_id": MESSAGE_ID, "output_index": 1, "content_index": 0,
         "part": part},
        *({"type": "response.output_text.delta", "item_id": MESSAGE_ID, "output_index": 1, "content_index": 0,
           "delta": word, "logprobs": [], "obfuscation": "uGUWqgltWG6mc"} for word in answer),
        {"type": "response.output_text.done", "item_id": MESSAGE_ID, "output_index": 1, "content_index": 0,
         "text": text, "logprobs": []},
        {"type": "response.content_part.done", "item_id": MESSAGE_ID, "output_index": 1, "content_index": 0,
         "part": {**part, "text": text}},
        {"type": "response.output_item.done", "output_index": 1, "item": final["output"][1]},
        {"type": "response.completed", "response": final},
    ]
    for number, event in enumerate(sequence):
        event["sequence_number"] = number
    return sequence


def chat_chunks(events: int, model: str = "gpt-4o-2024-08-06") -> list[dict]:
    def chunk(delta: dict, finish: str | None = None) -> dict:
        return {"id": CHAT_ID, "object": "chat.completion.chunk", "created": CREATED, "model": model,
                "service_tier": "default", "system_fingerprint": "fp_de604bd877",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
                "obfuscation": "yhjoJbEF"}

    words = _words(max(events, 3) - 2)
    return [chunk({"role": "assistant", "content": "", "refusal": None}),
            *(chunk({"content": word}) for word in words), chunk({}, "stop")]


def reasoning_chat_chunks(events: int, model: str = CHAT_ONLY_MODEL) -> list[dict]:
    """The answer of ``responses_events(events)`` as a chat-only reasoning model streams it (DeepSeek's fields):
    the same words as ``reasoning_content`` then ``content`` deltas, the finish, then the usage chunk. Translated
    into Responses events it is ``events`` events long again."""
    def chunk(delta: dict | None, finish: str | None = None, usage: dict | None = None) -> dict:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        return {"id": CHAT_ID, "object": "chat.completion.chunk", "created": CREATED, "model": model,
                "system_fingerprint": "fp_8802369eaa_prod0820_fp8_kvcache", "choices": choices, "usage": usage}

    deltas = max(events, MIN_EVENTS) - FRAME_EVENTS
    thinking, answer = _words(deltas // 2), _words(deltas - deltas // 2)
    return [chunk({"role": "assistant", "content": None, "reasoning_content": ""}),
            *(chunk({"reasoning_content": word}) for word in thinking),
            *(chunk({"content": word}) for word in answer),
            chunk({}, "stop"), chunk(None, usage=_chat_usage(deltas, deltas // 2))]


def _chat_usage(completion_tokens: int, reasoning_tokens: int) -> dict:
    return {"prompt_tokens": 13, "completion_tokens": completion_tokens, "total_tokens": 13 + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": reasoning_tokens}}


def reasoning_chat_completion(model: str = CHAT_ONLY_MODEL) -> dict:
    """The non-streamed Responses answer (60 words of reasoning, 80 of text) as a chat-only reasoning model
    answers it."""
    return {
        "id": CHAT_ID, "object": "chat.completion", "created": CREATED, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(_words(80)),
                                             "reasoning_content": "".join(_words(60))},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": _chat_usage(140, 70), "system_fingerprint": "fp_8802369eaa_prod0820_fp8_kvcache",
    }


def chat_completion(model: str = "gpt-4o-2024-08-06") -> dict:
    return {
        "id": CHAT_ID, "object": "chat.completion", "created": CREATED, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(_words(80)), "refusal": None,
                                             "annotations": []}, "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 16, "completion_tokens": 80, "total_tokens": 96,
                  "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}},
        "service_tier": "default", "system_fingerprint": "fp_de604bd877",
    }


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _json_answer(payload: object, status: bytes = b"200 OK") -> bytes:
    body = orjson.dumps(payload)
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
            + body)


STREAM_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ntransfer-encoding: chunked\r\n\r\n"
STREAM_END = b"0\r\n\r\n"


@functools.lru_cache(maxsize=64)
def answer(kind: str, stream: bool, events: int) -> tuple[bytes, bytes]:
    """(head, rest) of a whole HTTP answer; a silent stream pauses between the two. ``kind``: responses, chat,
    or reasoning-chat."""
    if not stream:
        if kind == "responses":
            return _json_answer(response_object("o3-pro-2025-06-10", "".join(_words(60)), "".join(_words(80)),
                                                usage=_usage(140))), b""
        return _json_answer(reasoning_chat_completion() if kind == "reasoning-chat" else chat_completion()), b""
    head, parts = stream_parts(kind, events)
    return head, b"".join(parts)


@functools.lru_cache(maxsize=64)
def stream_parts(kind: str, events: int) -> tuple[bytes, tuple[bytes, ...]]:
    """A stream's head (with its first events), then each later event, the end with the last.

    Each SSE event is its own HTTP chunk, as OpenAI frames them.
    """
    if kind == "responses":
        frames = [_chunk(b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n")
                  for event in responses_events(events)]
        return STREAM_HEAD + b"".join(frames[:2]), (*frames[2:-1], frames[-1] + STREAM_END)
    chunks = reasoning_chat_chunks(events) if kind == "reasoning-chat" else chat_chunks(events)
    frames = [_chunk(b"data: " + orjson.dumps(chunk) + b"\n\n") for chunk in chunks]
    return STREAM_HEAD + frames[0], (*frames[1:], _chunk(b"data: [DONE]\n\n") + STREAM_END)


def background_answer(status: str) -> bytes:
    """A background run's Response JSON (``queued``, ``in_progress``, ``completed``), as create and GET answer."""
    payload = response_object("o3-pro-2025-06-10", "".join(_words(60)), "".join(_words(80)), status,
                              _usage(140) if status == "completed" else None)
    return _json_answer(payload | {"background": True, "store": True})


NO_BACKGROUND_STREAM = _json_answer({"error": {
    "message": "Streaming is not supported for background responses with this model.",
    "type": "invalid_request_error", "param": "stream", "code": "unsupported_value"}}, b"400 Bad Request")
NOT_FOUND = _json_answer({"error": {"message": "not found", "type": "invalid_request_error"}}, b"404 Not Found")
BAD_REQUEST = _json_answer({"error": {"message": "invalid JSON", "type": "invalid_request_error"}}, b"400 Bad Request")


class UpstreamProtocol(asyncio.Protocol):
    __slots__ = ("transport", "parser", "url", "headers", "body", "closed")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)
        self.closed = False
        self._reset()
        Stats.connections += 1
        Stats.open_connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        Stats.open_connections -= 1

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.write(BAD_REQUEST)
            self.transport.close()

    def _reset(self) -> None:
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.body: list[bytes] = []

    # httptools callbacks
    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name.startswith(b"x-bench-"):
            self.headers[name] = value

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        Stats.requests += 1
        path, body, headers = self.url.split(b"?", 1)[0], b"".join(self.body), self.headers
        keep_alive = self.parser.should_keep_alive()
        self._reset()
        if path.endswith(b"/responses") or path.endswith(b"/chat/completions"):
            try:
                request = orjson.loads(body)
                stream, background = request.get("stream") is True, request.get("background") is True
                model = request.get("model")
            except (orjson.JSONDecodeError, AttributeError):
                return self._send(BAD_REQUEST, b"", 0, keep_alive)
            if background and stream and Settings.refuse_background_stream:
                return self._send(NO_BACKGROUND_STREAM, b"", 0, keep_alive)
            if background and not stream:
                think = float(headers.get(b"x-bench-think-ms", Settings.think_ms)) / 1000
                Completed.background_done = time.monotonic() + think
                Stats.responses += 1
                return self._send(background_answer("queued"), b"", 0, keep_alive)
            events = int(headers.get(b"x-bench-events", Settings.events))
            think = float(headers.get(b"x-bench-think-ms", Settings.think_ms)) / 1000
            silent = float(headers.get(b"x-bench-silent-ms", Settings.silent_ms)) / 1000 if stream else 0.0
            gap = float(headers.get(b"x-bench-gap-ms", Settings.gap_ms)) / 1000 if stream else 0.0
            kind = "responses" if path.endswith(b"/responses") else "chat"
            setattr(Stats, kind, getattr(Stats, kind) + 1)
            if kind == "chat" and isinstance(model, str) and model.startswith(CHAT_ONLY_PREFIX):
                kind = "reasoning-chat"
            if gap > 0:
                self._send_apart(*stream_parts(kind, events), gap, keep_alive)
                return
            head, rest = answer(kind, stream, events)
            if think > 0:
                asyncio.get_running_loop().call_later(think, self._send, head, rest, silent, keep_alive)
            else:
                self._send(head, rest, silent, keep_alive)
        elif b"/responses/" in path and path.endswith(b"/cancel"):
            self._send(background_answer("cancelled"), b"", 0, keep_alive)
        elif b"/responses/" in path:
            done = time.monotonic() >= Completed.background_done
            if done:
                Completed.at = Completed.background_done
            self._send(background_answer("completed" if done else "in_progress"), b"", 0, keep_alive)
        elif path == b"/bench/completed":
            self._send(_json_answer({"at": Completed.at}), b"", 0, keep_alive)
        elif path == b"/bench/config":
            for key, value in orjson.loads(body or b"{}").items():
                setattr(Settings, key, value)
            self._send(_json_answer({k: getattr(Settings, k) for k in SETTINGS}), b"", 0, keep_alive)
        elif path == b"/bench/release":
            held = list(SILENT.items())
            for protocol, (timer, rest, stream_keep_alive) in held:
                timer.cancel()
                protocol._finish_silent(rest, stream_keep_alive)
            self._send(_json_answer({"released": len(held)}), b"", 0, keep_alive)
        elif path == b"/bench/stats":
            self._send(_json_answer({name: getattr(Stats, name) for name in STATS}), b"", 0, keep_alive)
        else:
            self._send(NOT_FOUND, b"", 0, keep_alive)

    def _send(self, head: bytes, rest: bytes, silent: float, keep_alive: bool) -> None:
        if self.closed:
            return
        if silent > 0:
            self.transport.write(head)
            Stats.silent_streams += 1
            timer = asyncio.get_running_loop().call_later(silent, self._finish_silent, rest, keep_alive)
            SILENT[self] = (timer, rest, keep_alive)
            return
        self.transport.write(head + rest if rest else head)
        if rest:
            Completed.at = time.monotonic()
        if not keep_alive:
            self.transport.close()

    def _send_apart(self, head: bytes, parts: tuple[bytes, ...], gap: float, keep_alive: bool) -> None:
        """The head at once, then one part every ``gap`` seconds."""
        self.transport.write(head)
        loop = asyncio.get_running_loop()

        def send(index: int) -> None:
            if self.closed:
                return
            self.transport.write(parts[index])
            Completed.at = time.monotonic()
            if index + 1 < len(parts):
                loop.call_later(gap, send, index + 1)
            elif not keep_alive:
                self.transport.close()

        loop.call_later(gap, send, 0)

    def _finish_silent(self, rest: bytes, keep_alive: bool) -> None:
        del SILENT[self]
        Stats.silent_streams -= 1
        self._send(rest, b"", 0, keep_alive)
        Completed.at = time.monotonic()


async def serve(host: str, port: int, backlog: int) -> None:
    server = await asyncio.get_running_loop().create_server(UpstreamProtocol, host, port, backlog=backlog)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--events", type=int, default=200, help="events per stream (default 200)")
    parser.add_argument("--think-ms", type=float, default=0.0, help="delay before every answer")
    parser.add_argument("--silent-ms", type=float, default=0.0, help="silence inside every stream")
    parser.add_argument("--gap-ms", type=float, default=0.0, help="time between a stream's events")
    parser.add_argument("--backlog", type=int, default=16384)
    args = parser.parse_args()
    Settings.events, Settings.think_ms, Settings.silent_ms = args.events, args.think_ms, args.silent_ms
    Settings.gap_ms = args.gap_ms
    raise_fd_limit()
    uvloop.run(serve(args.host, args.port, args.backlog))


if __name__ == "__main__":
    main()
