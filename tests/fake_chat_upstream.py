"""A fake chat-only upstream: the servers most models are reached through (DeepSeek's API, vLLM, llama.cpp,
a gateway's chat channel), which speak Chat Completions and lack the Responses API.

`POST /v1/chat/completions` answers scripted `Chat` answers (or the `Reply`, `Stream` and `Hang` behaviours of
fake_upstream), as JSON or streamed the way those servers stream:
- reasoning as `reasoning_content` deltas (DeepSeek, vLLM, llama.cpp; `reasoning_field="reasoning"` for the
  newer vLLM and gateway spelling) before the content, with `content: null` while the model thinks;
- tool calls in pieces: a first delta with the call's `index`, `id`, `type` and name (arguments ""), then the
  arguments in fragments carrying only the `index`; with `interleave=True` the fragments of several calls
  alternate, as servers that parse tool calls out of the model's text emit them;
- a last chunk with `choices: []` and the usage when the request asks `stream_options.include_usage` (DeepSeek
  adds its `prompt_cache_hit_tokens` / `prompt_cache_miss_tokens`), then `data: [DONE]`;
- `finish_reason` `stop`, `tool_calls` or `length`; `error_after=N`: an error chunk (`data: {"error": ...}`, as
  vLLM and gateways send a failure mid-stream) after N chunks, no finish_reason; `cut_after=N`: the connection
  drops after N chunks.
The chunk shapes follow the recorded OpenAI chat streams in fixtures/realdata (`ai/openai-text.chunks.txt`:
first delta, usage chunk; `openai-python/f82268f2...bin`: parallel tool call deltas), with the reasoning field
and usage details these servers add.

With `needs_reasoning_back`, an assistant message with tool calls but no `reasoning_content` is a 400, as
DeepSeek's thinking mode with tools answers it.

`POST /v1/responses` (and every path under it) answers as a server without the Responses API does:
`responses_answer = "not_found"` (404, the default), `"method_not_allowed"` (405) or `"not_supported"` (a
gateway's 400 saying the model does not support the endpoint). Other paths fall through to fake_upstream.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from fake_upstream import ECHO_LIMIT, FakeUpstream, Recorded, _chat_text, _Exchange, _pieces

Flavour = Literal["deepseek", "vllm", "llamacpp"]
ResponsesAnswer = Literal["not_found", "method_not_allowed", "not_supported"]

NOT_SUPPORTED = "The model `{model}` does not support the Responses API (/v1/responses). Use /v1/chat/completions."

# How each server spells a failed request: DeepSeek the OpenAI envelope, vLLM a flat object, llama.cpp an
# envelope with a numeric code.
_ERROR_SHAPES = {
    "deepseek": lambda status, message, kind: {"error": {"message": message, "type": kind, "param": None,
                                                         "code": kind}},
    "vllm": lambda status, message, kind: {"object": "error", "message": message, "type": kind, "param": None,
                                           "code": status},
    "llamacpp": lambda status, message, kind: {"error": {"code": status, "message": message, "type": kind}},
}


@dataclass
class ToolCall:
    """One tool call of a scripted answer; dict arguments are written compactly, as models write them."""
    name: str
    arguments: str | dict
    id: str | None = None

    def arguments_text(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, separators=(",", ":"), ensure_ascii=False)


@dataclass
class Chat:
    """A scripted chat answer: reasoning, then content, then tool calls.

    `finish_reason` defaults to `tool_calls` when there are calls, else `stop`; `usage` overrides the
    estimated token counts (`prompt_tokens`, `completion_tokens`, `cached_tokens`, `reasoning_tokens`).
    `error_after` / `cut_after` end a stream after that many chunks with an error chunk / a dropped
    connection; `chunk` is the size of the text pieces.
    """
    content: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    usage: dict[str, int] | None = None
    interleave: bool = False
    error_after: int | None = None
    error_message: str = "The model backend failed while generating."
    cut_after: int | None = None
    chunk: int = 6


class FakeChatUpstream(FakeUpstream):
    """A chat-only server of one `flavour`; scripted and inspected as FakeUpstream is."""

    def __init__(self, flavour: Flavour = "deepseek", reasoning_field: str = "reasoning_content") -> None:
        self.flavour = flavour
        self.reasoning_field = reasoning_field
        super().__init__()

    def reset(self) -> None:
        super().reset()
        self.responses_answer: ResponsesAnswer = "not_found"
        # DeepSeek's thinking mode with tools: an assistant message with tool calls must carry its reasoning_content.
        self.needs_reasoning_back = False

    def error_body(self, status: int, message: str, kind: str = "invalid_request_error") -> dict:
        """An error body as this flavour writes it."""
        return _ERROR_SHAPES[self.flavour](status, message, kind)

    async def _route(self, ex: _Exchange, r: Recorded) -> None:
        if r.path == "/v1/responses" or r.path.startswith("/v1/responses/"):
            await self._no_responses_api(ex, r)
        elif (r.method, r.path) == ("POST", "/v1/chat/completions"):
            await self._scripted(ex, r, self._chat_answer)
        else:
            await super()._route(ex, r)

    async def _no_responses_api(self, ex: _Exchange, r: Recorded) -> None:
        model = r.json.get("model") if isinstance(r.json, dict) else None
        if self.responses_answer == "not_supported":
            await ex.json({"error": {"message": NOT_SUPPORTED.format(model=model), "type": "invalid_request_error",
                                     "param": "model", "code": "model_not_supported"}}, 400)
        elif self.responses_answer == "method_not_allowed":
            await ex.json({"detail": "Method Not Allowed"}, 405)
        elif self.flavour == "llamacpp":
            await ex.json(self.error_body(404, "File Not Found", "not_found_error"), 404)
        else:
            await ex.json({"detail": "Not Found"}, 404)

    async def _chat_answer(self, ex: _Exchange, r: Recorded, chat: Chat | None) -> None:
        request = r.json
        if not isinstance(request, dict) or not isinstance(request.get("messages"), list):
            await ex.json(self.error_body(400, "'messages' must be a list of messages."), 400)
            return
        if self.needs_reasoning_back:
            for index, message in enumerate(request["messages"]):
                if isinstance(message, dict) and message.get("role") == "assistant" and message.get("tool_calls") \
                        and not message.get("reasoning_content"):
                    await ex.json(self.error_body(400, f"Missing `reasoning_content` field in the assistant message "
                                                       f"at message index {index}."), 400)
                    return
        if chat is None:
            chat = Chat(reasoning="The user wrote something; I will echo it.",
                        content=f"Echo: {_chat_text(request['messages'])[:ECHO_LIMIT]}")
        head = {"id": self._completion_id(), "created": int(time.time()), "model": request.get("model")}
        calls = [(call.id or self._call_id(), call) for call in chat.tool_calls]
        finish = chat.finish_reason or ("tool_calls" if calls else "stop")
        usage = self._usage(request, chat)
        if not request.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": chat.content or None}
            if chat.reasoning:
                message[self.reasoning_field] = chat.reasoning
            if calls:
                message["tool_calls"] = [{"id": call_id, "type": "function",
                                          "function": {"name": call.name, "arguments": call.arguments_text()}}
                                         for call_id, call in calls]
            await ex.json({**head, "object": "chat.completion", "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}], "usage": usage})
            return
        options = request.get("stream_options")
        frames = [self._chunk(head, delta) for delta in self._deltas(chat, calls)]
        if chat.error_after is not None:
            error = self.error_body(500, chat.error_message, "internal_server_error")
            frames = frames[:chat.error_after] + [_data({"error": error.get("error", error)}), b"data: [DONE]\n\n"]
        else:
            frames.append(self._chunk(head, {}, finish))
            if isinstance(options, dict) and options.get("include_usage"):
                frames.append(_data({**head, "object": "chat.completion.chunk", "choices": [], "usage": usage}))
            frames.append(b"data: [DONE]\n\n")
        await ex.chunks(frames, "text/event-stream; charset=utf-8", cut_after=chat.cut_after)

    def _deltas(self, chat: Chat, calls: list[tuple[str, ToolCall]]) -> list[dict]:
        """The deltas of an answer in stream order, before the finishing chunk."""
        field_name = self.reasoning_field
        deltas: list[dict] = [{"role": "assistant", "content": None if chat.reasoning else "",
                               field_name: "" if chat.reasoning else None}]
        deltas += [{"content": None, field_name: piece} for piece in _pieces(chat.reasoning, chat.chunk)]
        deltas += [{"content": piece, field_name: None} for piece in _pieces(chat.content, chat.chunk)]
        heads = [{"index": n, "id": call_id, "type": "function", "function": {"name": call.name, "arguments": ""}}
                 for n, (call_id, call) in enumerate(calls)]
        fragments = [[{"index": n, "function": {"arguments": piece}}
                      for piece in _pieces(call.arguments_text(), chat.chunk)] for n, (_, call) in enumerate(calls)]
        if chat.interleave:
            order = heads + [part for row in _round_robin(fragments) for part in row]
        else:
            order = [part for n, head in enumerate(heads) for part in (head, *fragments[n])]
        deltas += [{"tool_calls": [part]} for part in order]
        if self.flavour != "deepseek":  # vLLM and llama.cpp leave unset fields out; DeepSeek writes them as null
            deltas = [{k: v for k, v in delta.items() if v is not None} for delta in deltas]
        return deltas

    def _chunk(self, head: dict, delta: dict, finish: str | None = None) -> bytes:
        return _data({**head, "object": "chat.completion.chunk", "system_fingerprint": self._fingerprint(),
                      "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

    def _usage(self, request: dict, chat: Chat) -> dict:
        given = chat.usage or {}
        prompt = given.get("prompt_tokens", 7 + len(json.dumps(request.get("messages"), ensure_ascii=False)) // 4)
        reasoning = given.get("reasoning_tokens", len(chat.reasoning) // 4)
        visible = len(chat.content) // 4 + sum(len(call.arguments_text()) // 4 + 1 for call in chat.tool_calls) + 1
        completion = given.get("completion_tokens", visible + reasoning)
        cached = given.get("cached_tokens", 0)
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                 "prompt_tokens_details": {"cached_tokens": cached},
                 "completion_tokens_details": {"reasoning_tokens": reasoning}}
        if self.flavour == "deepseek":
            usage |= {"prompt_cache_hit_tokens": cached, "prompt_cache_miss_tokens": prompt - cached}
        return usage

    def _completion_id(self) -> str:
        if self.flavour == "deepseek":
            return "-".join(secrets.token_hex(n) for n in (4, 2, 2, 2, 6))
        return f"chatcmpl-{secrets.token_hex(16)}"

    def _call_id(self) -> str:
        if self.flavour == "vllm":
            return f"chatcmpl-tool-{secrets.token_hex(16)}"
        if self.flavour == "llamacpp":
            return secrets.token_urlsafe(24)[:32]
        return f"call_00_{secrets.token_urlsafe(18)}"

    def _fingerprint(self) -> str | None:
        return "fp_8802369eaa_prod0820_fp8_kvcache" if self.flavour == "deepseek" else None


def _round_robin(rows: list[list[dict]]) -> list[list[dict]]:
    """Column by column: the first fragment of every call, then the second, ..."""
    width = max((len(row) for row in rows), default=0)
    return [[row[n] for row in rows if n < len(row)] for n in range(width)]


def _data(payload: dict) -> bytes:
    return f"data: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()
