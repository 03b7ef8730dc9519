"""The README stays short, and no link in it, docs/ or bench/README.md points at a file or heading that is not there."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml

PROJECT = Path(__file__).resolve().parent.parent
README = PROJECT / "README.md"
DOCS = sorted((PROJECT / "docs").glob("*.md"))
PAGES = [README, *DOCS, PROJECT / "bench" / "README.md"]
README_LIMIT = 12_000  # 12 KB

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def prose(text: str) -> str:
    """The text outside code blocks and inline code, where links are links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor of a Markdown page, with GitHub's -1, -2 ... for repeated headings."""
    seen: dict[str, int] = {}
    result = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text("utf-8"))):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def links(page: Path) -> list[str]:
    return LINK.findall(prose(page.read_text("utf-8")))


def broken_links(page: Path) -> list[str]:
    problems = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # https:, mailto:, ...
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / unquote(path)).resolve() if path else page
        if not linked.exists():
            problems.append(f"{target}: no file {linked}")
        elif anchor and linked.suffix == ".md" and unquote(anchor) not in anchors(linked):
            problems.append(f"{target}: no heading with anchor #{anchor} in {linked}")
    return problems


def test_readme_is_under_12_kb():
    size = README.stat().st_size
    assert size < README_LIMIT, f"README.md is {size} bytes; keep it under {README_LIMIT} and move detail to docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(PROJECT)))
def test_every_relative_link_and_anchor_exists(page):
    assert broken_links(page) == []


def test_readme_links_every_docs_page():
    linked = {(PROJECT / target.partition("#")[0]).resolve() for target in links(README)}
    assert [page.name for page in DOCS if page not in linked] == []


def test_the_checker_sees_broken_links_and_anchors(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## `stop`, `n`, `logprobs`\n\n## Twice\n\n## Twice\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n[ok](other.md) [ok](other.md#stop-n-logprobs) [ok](#page) [ok](other.md#twice-1)\n"
        "[web](https://example.com/missing) `[code](missing.md)`\n\n```\n[fenced](missing.md)\n```\n\n"
        "[gone](missing.md) [no heading](other.md#nothing) ![image](nothing.png) [here](#nowhere)\n")
    problems = broken_links(page)
    assert [problem.split(":")[0] for problem in problems] == [
        "missing.md", "other.md#nothing", "nothing.png", "#nowhere"]


def code_blocks(page: Path) -> list[str]:
    return [block.split("\n", 1)[1] for block in re.findall(r"^```.*?^```", page.read_text("utf-8"), re.M | re.S)]


def test_open_webui_recipe_reaches_a_proxy_on_the_host_on_linux_too():
    """Docker on Linux has no host.docker.internal unless mapped, and reaches the host from the bridge, not loopback."""
    blocks = code_blocks(PROJECT / "docs" / "deployment.md")
    [webui] = [block for block in blocks if "docker run" in block and "open-webui/open-webui" in block]
    assert "--add-host=host.docker.internal:host-gateway" in webui
    webui_port = re.search(r"OPENAI_API_BASE_URL=http://host\.docker\.internal:(\d+)/v1", webui).group(1)
    [proxy] = [line for block in blocks for line in block.splitlines() if "responses-proxy --host 0.0.0.0" in line]
    assert "PROXY_API_KEYS=" in proxy, "a proxy listening beyond loopback needs proxy keys"
    assert re.search(r"--port (\d+)", proxy).group(1) == webui_port


def test_compose_command_in_the_docs_sets_what_compose_requires():
    compose = yaml.safe_load((PROJECT / "docker-compose.yml").read_text("utf-8"))
    required = set(re.findall(r"\$\{(\w+):\?", json.dumps(compose["services"])))
    [command] = [block for block in code_blocks(PROJECT / "docs" / "deployment.md")
                 if "docker compose up" in block and "$env:" not in block]
    assert required and {name for name in required if f"{name}=" not in command} == set()
