"""The ``encrypted_content`` of a reasoning item served through chat: what the proxy needs to give the upstream
its ``reasoning_content`` back on a later turn (the reasoning text, and the model it came from), carried by the
client, so that reasoning round-trips without anything stored (Codex CLI sends ``store: false`` with
``include: ["reasoning.encrypted_content"]``). Pure: the key is handed in.

Sealed, not encrypted: the reasoning text is shown to the client anyway, as the item's summary, so what matters
is that no client can forge or alter what the upstream will be told is its own reasoning. A seal is
``rp1.`` then, base64url, the key's id (8 bytes), an HMAC-SHA256 tag (32 bytes) over the version, the key's id
and the payload, and the payload: zlib-compressed JSON. No dependency beyond the standard library.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import zlib
from typing import Literal, NamedTuple

VERSION = b"rp1"
PREFIX = VERSION.decode() + "."
_KEY_ID_BYTES = 8
_TAG_BYTES = 32


class Unsealed(NamedTuple):
    """What a reasoning item's ``encrypted_content`` turned out to be.

    ``reasoning``: sealed here, and intact (``model`` and ``text`` given); ``foreign``: sealed by this proxy
    under another key (another process with a key of its own, or a key since changed): it cannot be checked;
    ``other``: not sealed by this proxy at all (an OpenAI upstream's, say); ``altered``: sealed under this key,
    but changed since (or cut).
    """

    kind: Literal["reasoning", "foreign", "other", "altered"]
    model: str = ""
    text: str = ""


class ReasoningSeal:
    """Seals and opens reasoning with one server key (any bytes; the keys it uses are derived from it)."""

    __slots__ = ("_mac_key", "_key_id")

    def __init__(self, key: bytes) -> None:
        self._mac_key = hmac.digest(key, b"responses-proxy reasoning seal", hashlib.sha256)
        self._key_id = hmac.digest(key, b"responses-proxy reasoning seal key id", hashlib.sha256)[:_KEY_ID_BYTES]

    def seal(self, model: str, text: str) -> str:
        payload = zlib.compress(json.dumps({"model": model, "reasoning": text}, ensure_ascii=False,
                                           separators=(",", ":")).encode())
        tag = hmac.digest(self._mac_key, VERSION + self._key_id + payload, hashlib.sha256)
        return PREFIX + base64.urlsafe_b64encode(self._key_id + tag + payload).rstrip(b"=").decode()

    def open(self, sealed: str) -> Unsealed:
        if not sealed.startswith(PREFIX):
            return Unsealed("other")
        body = sealed[len(PREFIX):]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            return Unsealed("altered")
        key_id, tag, payload = (raw[:_KEY_ID_BYTES], raw[_KEY_ID_BYTES:_KEY_ID_BYTES + _TAG_BYTES],
                                raw[_KEY_ID_BYTES + _TAG_BYTES:])
        if len(tag) < _TAG_BYTES:
            return Unsealed("altered")
        if key_id != self._key_id:
            return Unsealed("foreign")
        if not hmac.compare_digest(tag, hmac.digest(self._mac_key, VERSION + key_id + payload, hashlib.sha256)):
            return Unsealed("altered")
        # Only what this key sealed gets here: decompressing it cannot be made to blow up.
        content = json.loads(zlib.decompress(payload))
        return Unsealed("reasoning", content["model"], content["reasoning"])
