"""Attacks on the proxy's trust boundaries: keys, upstream host, paths, headers."""

from __future__ import annotations

from urllib.parse import unquote

import httpx
import pytest

from wire import MESSAGES, completion_of, post_chat


@pytest.mark.parametrize("key", ["ключ", "a\r\nSet-Cookie: session=evil", "nul\x00byte", "tab\there", "x" * 20000])
def test_dropped_parameter_names_cannot_break_or_inject_response_headers(proxy_url, fake, key):
    """Unknown keys are listed in x-proxy-dropped-params; the client chose them, so they are encoded."""
    response = post_chat(proxy_url, {"model": "o3-pro", "messages": MESSAGES, "temperature": 1, key: 1})
    completion_of(response)
    assert "set-cookie" not in response.headers
    listed = response.headers["x-proxy-dropped-params"]
    assert listed.isascii() and listed.isprintable() and len(listed) <= 1024
    names = [unquote(name) for name in listed.split(", ")]
    assert "temperature" in names
    if len(key) < 100:
        assert key in names
