"""The model field of a multipart upload, read from the body's start (proxy.forms)."""

from __future__ import annotations

import pytest

from proxy.forms import form_boundary, form_value, with_form_value

BODY = (b'--b1\r\ncontent-disposition: form-data; name="file"; filename="model.mp3"\r\n\r\nID3\r\n'
        b'--b1\r\ncontent-disposition: form-data; name="model"\r\n\r\nwhisper\r\n--b1--\r\n')


@pytest.mark.parametrize("content_type, boundary", [
    ("multipart/form-data; boundary=b1", "b1"), ('Multipart/Form-Data; boundary="a b"; charset=x', "a b"),
    ("multipart/form-data", None), ("application/json; boundary=b1", None)])
def test_the_boundary_of_a_form(content_type, boundary):
    assert form_boundary(content_type) == boundary


def test_a_field_is_read_once_whole_and_a_file_of_its_name_is_not_it():
    assert form_value(BODY, "b1", "model") == ("whisper", True)
    cut = BODY.index(b"whisper") + 4
    assert form_value(BODY[:cut], "b1", "model") == (None, False)  # its end may still come
    assert form_value(BODY, "b1", "file") == (None, True)  # only a file part has that name: no text field
    assert form_value(BODY.replace(b'name="model"', b'name="language"'), "b1", "model") == (None, True)


def test_a_field_is_named_anew_in_place():
    renamed = with_form_value(BODY, "b1", "model", "my-whisper")
    assert renamed == BODY.replace(b"whisper", b"my-whisper")
    assert form_value(renamed, "b1", "model") == ("my-whisper", True)
    empty = BODY.replace(b"whisper", b"")
    assert form_value(empty, "b1", "model") == ("", True)
    with pytest.raises(ValueError):
        with_form_value(BODY, "b1", "language", "en")
