"""Fold chat.completion.chunk payloads into one message, the way chat clients do."""

from __future__ import annotations

from typing import Any

import httpx


def fold(frames: list[dict[str, Any]]) -> dict[str, Any]:
    """Return ``{"message", "finish_reasons", "usage", "error"}`` for a list of stream payloads."""
    content: list[str] = []
    reasoning: list[str] = []
    refusal: list[str] = []
    annotations: list[dict[str, Any]] = []
    calls: dict[int, dict[str, Any]] = {}
    finish_reasons: list[str] = []
    usage = None
    error = None
    for frame in frames:
        if "error" in frame:
            error = frame["error"]
            continue
        if frame.get("usage"):
            usage = frame["usage"]
        for choice in frame.get("choices", []):
            delta = choice.get("delta", {})
            content.append(delta.get("content") or "")
            reasoning.append(delta.get("reasoning_content") or "")
            refusal.append(delta.get("refusal") or "")
            annotations.extend(delta.get("annotations") or [])
            for call in delta.get("tool_calls") or []:
                slot = calls.setdefault(call["index"], {"id": None, "type": "function",
                                                        "function": {"name": "", "arguments": ""}})
                if call.get("id"):
                    slot["id"] = call["id"]
                function = call.get("function") or {}
                slot["function"]["name"] += function.get("name") or ""
                slot["function"]["arguments"] += function.get("arguments") or ""
            if choice.get("finish_reason"):
                finish_reasons.append(choice["finish_reason"])
    message: dict[str, Any] = {"content": "".join(content), "refusal": "".join(refusal) or None}
    if "".join(reasoning):
        message["reasoning_content"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = [calls[index] for index in sorted(calls)]
    if annotations:
        message["annotations"] = annotations
    return {"message": message, "finish_reasons": finish_reasons, "usage": usage, "error": error}


def comparable(message: dict[str, Any]) -> dict[str, Any]:
    """A non-streamed message in the folded form (``None`` content is the empty string)."""
    out = {key: value for key, value in message.items() if key != "role"}
    out["content"] = out.get("content") or ""
    return out


async def read_first_content_then_leave(proxy_url: str, body: dict[str, Any]) -> None:
    """Stream a chat request, and hang up as soon as the first content arrives."""
    async with httpx.AsyncClient(timeout=30) as http:
        async with http.stream("POST", proxy_url + "/v1/chat/completions", json={**body, "stream": True}) as response:
            async for line in response.aiter_lines():
                if '"content"' in line:
                    return
