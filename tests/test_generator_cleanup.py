"""The proxy closes the async generators it leaves early itself, instead of leaving them to the event loop.

A generator dropped while suspended is closed by the event loop in a task of its own, started through a
thread-safe wake-up: two of those per translated request cost about 8% of its CPU at low load.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import proxy
from conftest import proxy_config, sdk
from fake_upstream import Reply, Stream, build_response, error_body, message_item, stream_events
from proxy.app import create_app
from servers import running_app

PROXY_SOURCES = str(Path(proxy.__file__).parent)
MESSAGES = [{"role": "user", "content": "Prove it."}]
LONG_ANSWER = "The quick brown fox jumps over the lazy dog, " * 20


class FinalizerWatch:
    """Wraps the app; records the proxy's async generators that the server's event loop had to close."""

    def __init__(self, app) -> None:
        self.app = app
        self.left_to_the_loop: list[str] = []
        self.watching = False

    async def __call__(self, scope, receive, send) -> None:
        if not self.watching:  # in the server's thread, whose event loop installed the hooks
            self.watching = True
            hooks = sys.get_asyncgen_hooks()

            def finalizer(generator) -> None:
                if generator.ag_code.co_filename.startswith(PROXY_SOURCES):
                    self.left_to_the_loop.append(generator.ag_code.co_qualname)
                hooks.finalizer(generator)

            sys.set_asyncgen_hooks(firstiter=hooks.firstiter, finalizer=finalizer)
        await self.app(scope, receive, send)


def requests(client, slow) -> None:
    """Whole and streamed answers, with one and two choices, cut by a stop sequence, passed through."""
    client.chat.completions.create(model="o3-pro", messages=MESSAGES)
    client.chat.completions.create(model="o3-pro", messages=MESSAGES, n=2)
    list(client.chat.completions.create(model="o3-pro", messages=MESSAGES, stream=True))
    list(client.chat.completions.create(model="o3-pro", messages=MESSAGES, stream=True, n=2))
    list(client.chat.completions.create(model="o3-pro", messages=MESSAGES, stream=True, stop=["Prove"]))
    slow.script(Stream(events=stream_events(build_response({"model": "o3-pro"}, [message_item(LONG_ANSWER)]),
                                            text_chunk=4), delay=0.01))
    # Stopped while the upstream is still sending: the proxy stops reading it half-way.
    list(client.chat.completions.create(model="o3-pro", messages=MESSAGES, stream=True, stop=["lazy"]))
    client.chat.completions.create(model="o3-pro", messages=MESSAGES, stop=["Prove"])
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))


@pytest.mark.parametrize("background", [False, True], ids=["plain", "background"])
def test_no_generator_is_left_for_the_event_loop_to_close(fake, background):
    if background:
        fake.background_polls = 2
    watch = FinalizerWatch(create_app(proxy_config(fake.base_url,
                                                   models={"o3-pro*": {"background": background}})))
    with running_app(watch) as url:
        requests(sdk(url), fake)
        if background:  # polled instead of streamed: the upstream refuses streaming
            fake.script(Reply(400, json=error_body("Streaming is not supported for this model.", param="stream")))
            list(sdk(url).chat.completions.create(model="o3-pro", messages=MESSAGES, stream=True))
    assert watch.watching
    assert watch.left_to_the_loop == []
