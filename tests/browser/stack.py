"""The fake Responses upstream and the proxy on fixed loopback ports, for the browser job.

The fake answers every Responses request for the demo model (the translated o3-pro) with a reasoning summary
and a Markdown answer, so a chat app pointed at the proxy shows both; everything else (the model list, other
models, passed through) gets the fake's ordinary answers. Runs until interrupted.

Needs only the proxy's own dependencies (``pip install -e .``), not the test tools:

    PYTHONPATH=. .venv/bin/python tests/browser/stack.py --port 18080
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn

TESTS = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(TESTS), str(TESTS.parent)]

from fake_upstream import Respond, message_item, reasoning_item, running_fake_upstream  # noqa: E402
from proxy.app import create_app  # noqa: E402
from proxy.config import DEFAULT_MODEL_SETTINGS, load_config  # noqa: E402

MODEL = "o3-pro"
REASONING = [
    "**Working out the request**\n\nThe user asks how the proxy handles o3-pro. The key point is that "
    "o3-pro is served only by the Responses API.",
    "**Planning the answer**\n\nExplain the translation in two steps and keep it short.",
]
ANSWER = (
    "**o3-pro** is served only by the Responses API, so the proxy:\n\n"
    "1. rewrites your chat request into a Responses request, and\n"
    "2. streams the answer back as chat completion chunks, with the reasoning summary as "
    "`reasoning_content`.\n\n"
    "That is why you can see my reasoning above this answer."
)


def answer(request: dict) -> Respond | None:
    """The demo answer for the demo model; None leaves any other request to the fake's echo."""
    if request.get("model") != MODEL:
        return None
    return Respond(output=[reasoning_item(REASONING), message_item(ANSWER)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=18080, help="the proxy's loopback port (default 18080)")
    args = parser.parse_args()
    with running_fake_upstream() as fake:
        fake.answer = answer
        config = load_config(env={}, overrides={
            "upstream": {"base_url": fake.base_url, "api_key": "sk-browser-job"},
            "stream": {"heartbeat_interval": 5},
            # Plain calls, not background mode, so the fake's answer comes in one stream.
            "models": {glob: {"background": False} for glob in DEFAULT_MODEL_SETTINGS},
        })
        print(f"fake upstream {fake.base_url}, proxy http://127.0.0.1:{args.port}/v1", flush=True)
        uvicorn.run(create_app(config), host="127.0.0.1", port=args.port, log_level="info")


if __name__ == "__main__":
    main()
