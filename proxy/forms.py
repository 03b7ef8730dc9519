"""A field of a multipart/form-data body (RFC 7578), read from the body's start. Pure: no I/O.

Azure's dated API names the deployment of an upload (audio transcriptions, translations) in the path, while the
client names its model in the form: the proxy reads the start of the body for that field and streams the rest.
"""

from __future__ import annotations

import re

_BOUNDARY = re.compile(r'boundary=(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)
_NAME = re.compile(rb'\bname="([^"]*)"', re.IGNORECASE)
_FILENAME = re.compile(rb'\bfilename\*?=', re.IGNORECASE)


def form_boundary(content_type: str) -> str | None:
    """The boundary of a ``multipart/form-data`` content type; None for any other type."""
    if not content_type.lower().lstrip().startswith("multipart/form-data"):
        return None
    match = _BOUNDARY.search(content_type)
    return (match.group(1) or match.group(2)) if match else None


def form_value(start: bytes, boundary: str, name: str) -> tuple[str | None, bool]:
    """The value of the text field ``name`` if ``start`` holds it whole, and whether the whole body was seen
    (its closing delimiter): ``(None, False)`` means more of the body may still hold it."""
    delimiter = b"--" + boundary.encode("latin-1")
    wanted = name.encode()
    parts = start.split(delimiter)
    for part in parts[1:-1]:  # each followed by a delimiter, so whole
        head, blank, value = part.partition(b"\r\n\r\n")
        found = _NAME.search(head)
        if blank and found and found.group(1) == wanted and not _FILENAME.search(head):
            return value.removesuffix(b"\r\n").decode("utf-8", "replace"), True
    return None, len(parts) > 1 and parts[-1].startswith(b"--")
