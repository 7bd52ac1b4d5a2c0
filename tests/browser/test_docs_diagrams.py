"""The documentation's Mermaid diagrams render in Chromium with no network access.

The docs are built into a temporary directory and opened from the file system;
every request that leaves it is refused and recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

DOCS = Path(__file__).resolve().parent.parent.parent / "docs"


@pytest.fixture(scope="module")
def built_docs(chromium_executable: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sphinx.cmd.build import build_main

    out = tmp_path_factory.mktemp("docs-html")
    status = build_main(["-q", "-b", "html", "-d", str(out / ".doctrees"), str(DOCS), str(out)])
    assert status == 0
    return out


def test_concepts_diagrams_render_offline(page: Any, built_docs: Path) -> None:
    remote: list[str] = []

    def refuse_network(route: Any) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            remote.append(route.request.url)
            route.abort()

    page.route("**/*", refuse_network)
    source = (built_docs / "concepts.html").read_text(encoding="utf-8")
    diagrams = source.count('class="mermaid"')
    assert diagrams >= 3
    page.goto((built_docs / "concepts.html").as_uri())
    page.wait_for_function(
        f"document.querySelectorAll('.mermaid svg').length === {diagrams}", timeout=30_000)
    # drawn: the sequence diagrams have their participants as text
    assert "pyop Provider" in page.locator(".mermaid").first.inner_text()
    assert remote == []
