"""tests/browser/stack.py, the browser job's fake upstream and proxy, as a person exploring it meets it.

The job itself (Open WebUI in Chromium) runs outside the suite; this starts the stack as the job does, with
the test tools out of reach, and asks it what the chat app would.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from wire import MESSAGES, closed_port, completion_of, http, post_chat, stream_outcome, wait_until

STACK = os.path.join(os.path.dirname(__file__), "browser", "stack.py")
# The job's PROXY_PYTHON needs only the proxy's own dependencies: the test tools are made unimportable.
WITHOUT_TEST_TOOLS = (
    "import runpy, sys\n"
    "for name in ('openai', 'pytest', 'hypothesis', 'conftest'): sys.modules[name] = None\n"
    "sys.argv = [sys.argv[1], *sys.argv[2:]]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


@pytest.fixture(scope="module")
def stack():
    port = closed_port()
    process = subprocess.Popen([sys.executable, "-c", WITHOUT_TEST_TOOLS, STACK, "--port", str(port)],
                               env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(STACK))},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert process.poll() is None, process.stdout.read()
        try:
            return http.get(url + "/healthz", timeout=1).status_code == 200
        except Exception:
            return False

    try:
        wait_until(up, 30, "the browser stack to start")
        yield url
    finally:
        process.terminate()
        process.wait(10)


def test_the_demo_model_gets_the_demo_answer_every_time(stack):
    for _ in range(3):
        chunks, error = stream_outcome(post_chat(stack, {"model": "o3-pro", "messages": MESSAGES}, stream=True))
        assert error is None
        text = "".join(choice["delta"].get("content") or "" for chunk in chunks for choice in chunk["choices"])
        reasoning = "".join(choice["delta"].get("reasoning_content") or ""
                            for chunk in chunks for choice in chunk["choices"])
        assert text.startswith("**o3-pro** is served only by the Responses API")
        assert "Working out the request" in reasoning


def test_model_lists_and_other_models_do_not_use_up_the_demo_answers(stack):
    for _ in range(3):
        assert "o3-pro" in {model["id"] for model in http.get(stack + "/v1/models").json()["data"]}
    answer = completion_of(post_chat(stack, {"model": "gpt-4o", "messages": MESSAGES}))
    assert answer["choices"][0]["message"]["content"] == "Echo: Hi"
    demo = completion_of(post_chat(stack, {"model": "o3-pro", "messages": MESSAGES}))
    assert demo["choices"][0]["message"]["content"].startswith("**o3-pro**")
