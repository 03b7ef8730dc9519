"""A text field of a multipart/form-data body (RFC 7578), read from the body's start. Pure: no I/O.

Azure names the deployment of an upload (audio transcriptions and translations, image edits) in the path on its
dated API, and in the form's ``model`` field on its v1 API, while the client names its model in the form: the
proxy reads the start of the body for that field (and may name the deployment there), and streams the rest.
"""

from __future__ import annotations

import re

_BOUNDARY = re.compile(r'boundary=(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)
_NAME = re.compile(rb'\bname="([^"]*)"', re.IGNORECASE)
_FILENAME = re.compile(rb'\bfilename\*?=', re.IGNORECASE)
_HEAD_END = b"\r\n\r\n"
_LINE_END = b"\r\n"


def form_boundary(content_type: str) -> str | None:
    """The boundary of a ``multipart/form-data`` content type; None for any other type."""
    if not content_type.lower().lstrip().startswith("multipart/form-data"):
        return None
    match = _BOUNDARY.search(content_type)
    return (match.group(1) or match.group(2)) if match else None


def form_value(start: bytes, boundary: str, name: str) -> tuple[str | None, bool]:
    """The value of the text field ``name`` if ``start`` holds it whole, and whether the whole body was seen
    (its closing delimiter): ``(None, False)`` means more of the body may still hold it."""
    span, whole = _value_span(start, boundary, name)
    return (start[span[0]:span[1]].decode("utf-8", "replace") if span else None), whole or span is not None


def with_form_value(start: bytes, boundary: str, name: str, value: str) -> bytes:
    """``start`` with the text field ``name``, which it holds whole, set to ``value``."""
    span, _ = _value_span(start, boundary, name)
    if span is None:
        raise ValueError(f"no whole field {name!r} in the start of the form")
    return start[:span[0]] + value.encode() + start[span[1]:]


def _value_span(start: bytes, boundary: str, name: str) -> tuple[tuple[int, int] | None, bool]:
    """Where the value of the text field ``name`` lies in ``start``, if it is there whole; and whether the closing
    delimiter was seen."""
    delimiter = b"--" + boundary.encode("latin-1")
    wanted = name.encode()
    at = start.find(delimiter)
    while at >= 0:
        after = at + len(delimiter)
        following = start.find(delimiter, after)
        if start.startswith(b"--", after):
            return None, True
        if following < 0:  # the part may not be whole yet
            return None, False
        head_end = start.find(_HEAD_END, after, following)
        if head_end >= 0:
            head = start[after:head_end]
            found = _NAME.search(head)
            if found and found.group(1) == wanted and not _FILENAME.search(head):
                end = following - len(_LINE_END) if start.startswith(_LINE_END, following - len(_LINE_END)) \
                    else following
                return (head_end + len(_HEAD_END), end), False
        at = following
    return None, False
