"""The web explorer in a real browser: Debian's chromium driven by Playwright.

Search a track, open it, read its graph's followers and counts, click one and land on its page,
build a path, download it; no console errors on any page, and every request goes to the
explorer on 127.0.0.1. The first load of a track page is logged (not asserted).

Screenshots for the documentation: ``EXPLORER_SCREENSHOTS=docs python -m pytest
tests/test_explorer_browser.py`` writes ``docs/explorer-track.png`` and ``docs/explorer-path.png``
(else they go to the test's temporary folder).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.explorer_server import serving
from tests.web_catalogue import APRICOTS, FOLLOWERS_OF_GLUE, GLUE, NEVER_COME_BACK, SO_U_KNO, build

CHROMIUM = "/usr/bin/chromium"
playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() and not shutil.which("chromium"),
        reason="chromium is not installed (apt-get install chromium)",
    ),
    # One worker runs them all: one browser and one scene, not one per xdist worker.
    pytest.mark.xdist_group("explorer_browser"),
]
logger = logging.getLogger(__name__)


@dataclass
class Watched:
    """What the browser did: every request's URL, and the console errors and page errors."""

    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def site(make_database) -> Iterator[tuple[str, dict[tuple[str, str], str]]]:
    url = make_database()
    ids = build(url)
    with serving(url) as server:
        yield server.url, ids


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            args=["--no-sandbox"],
        )
        yield launched
        launched.close()


@pytest.fixture
def watched() -> Watched:
    return Watched()


@pytest.fixture
def page(browser, watched: Watched, site) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    opened = context.new_page()
    opened.on("request", lambda request: watched.requests.append(request.url))
    opened.on(
        "console",
        lambda message: watched.errors.append(message.text) if message.type == "error" else None,
    )
    opened.on("pageerror", lambda error: watched.errors.append(str(error)))
    yield opened
    context.close()
    base = site[0] + "/"
    assert watched.errors == []
    assert [url for url in watched.requests if not url.startswith(base)] == []


def screenshots() -> Path | None:
    folder = os.environ.get("EXPLORER_SCREENSHOTS")
    return REPO_ROOT / folder if folder else None


def graph_ready(page: Any) -> None:
    page.wait_for_function("window.explorerGraph && window.explorerGraph.nodes().length > 0")


def test_search_open_a_track_read_its_graph_and_click_a_follower(
    page, site, tmp_path: Path, record_property
) -> None:
    url, ids = site
    page.goto(url + "/")
    page.fill("#search-input", "bicep glue")
    page.press("#search-input", "Enter")
    page.wait_for_selector('[data-testid="search-results"]')
    page.click(f'[data-testid="search-results"] a[href="/track/{ids[GLUE]}"]')
    page.wait_for_url(f"{url}/track/{ids[GLUE]}")
    graph_ready(page)
    load_ms = page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0];"
        " return {load: n.loadEventEnd - n.startTime, ready: performance.now()}; }"
    )
    logger.info(
        "First load of a track page: %.0f ms to the load event, graph drawn by %.0f ms",
        load_ms["load"],
        load_ms["ready"],
    )
    record_property("track_page_first_load_ms", round(load_ms["load"]))
    centre = ids[GLUE]
    followers = page.evaluate(
        """(centre) => window.explorerGraph.edges()
            .filter(e => e.source().id() === centre)
            .map(e => [e.target().id(), e.data('sets'), e.data('djs')])""",
        centre,
    )
    assert {track: (sets, djs) for track, sets, djs in followers} == {
        ids[name]: counts for name, counts in FOLLOWERS_OF_GLUE.items()
    }
    widths = dict(
        page.evaluate(
            """(centre) => window.explorerGraph.edges()
                .filter(e => e.source().id() === centre)
                .map(e => [e.target().id(), parseFloat(e.renderedStyle('width'))])""",
            centre,
        )
    )
    assert widths[ids[APRICOTS]] == max(widths.values()), "the most played edge is the widest"
    folder = screenshots()
    page.screenshot(path=str((folder or tmp_path) / "explorer-track.png"), full_page=True)
    target = page.evaluate(
        """(id) => { const n = window.explorerGraph.$id(id).renderedPosition();
            const box = document.getElementById('graph').getBoundingClientRect();
            return {x: box.left + n.x, y: box.top + n.y}; }""",
        ids[APRICOTS],
    )
    page.mouse.click(target["x"], target["y"])
    page.wait_for_url(f"{url}/track/{ids[APRICOTS]}")
    assert page.inner_text("h1") == "Bicep – Apricots"
    graph_ready(page)


def test_build_a_path_and_download_it(page, site, tmp_path: Path) -> None:
    url, ids = site
    page.goto(url + "/path")
    for field_name, name in (("from", NEVER_COME_BACK), ("to", SO_U_KNO)):
        page.fill(f"#{field_name}", " - ".join(name))
        # The typeahead fills the hidden id once /api/search offers exactly this track.
        page.wait_for_function(
            f"document.getElementById('{field_name}_id').value === '{ids[name]}'"
        )
    page.select_option("#max_steps", "4")
    page.check("#harmonic")
    page.click("#builder button[type=submit]")
    page.wait_for_selector('[data-testid="path-steps"]')
    steps = page.eval_on_selector_all(
        '[data-testid="path-steps"] li.step', "items => items.map(i => i.dataset.trackId)"
    )
    assert steps == [ids[NEVER_COME_BACK], ids[GLUE], ids[APRICOTS], ids[SO_U_KNO]]
    query = urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)
    assert query["from_id"] == [ids[NEVER_COME_BACK]] and query["harmonic"] == ["true"]
    folder = screenshots()
    page.screenshot(path=str((folder or tmp_path) / "explorer-path.png"), full_page=True)
    with page.expect_download() as download_info:
        page.click('a.download[data-format="jspf"]')
    download = download_info.value
    assert download.suggested_filename.endswith(".jspf")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    playlist = json.loads(saved.read_text())["playlist"]
    assert [(t["creator"], t["title"]) for t in playlist["track"]] == [
        NEVER_COME_BACK,
        GLUE,
        APRICOTS,
        SO_U_KNO,
    ]
    with page.expect_download() as download_info:
        page.click('a.download[data-format="m3u"]')
    m3u = Path(download_info.value.path()).read_text()
    assert m3u.startswith("#EXTM3U") and m3u.count("#EXTINF") == 4


PAGES = [
    "/",
    "/?q=glue",
    "/track/{glue}",
    "/dj?name=Ben+UFO",
    "/setlist/set-a",
    "/setlist/set-c",
    "/top",
    "/top?since=2025-03-01",
    "/path",
    "/path?from=Caribou+-+Never+Come+Back&to=Overmono+-+So+U+Kno&bpm_window=2",
    "/api/docs",
]


def test_no_console_errors_on_any_page(page, site) -> None:
    url, ids = site
    for path in PAGES:
        response = page.goto(url + path.format(glue=ids[GLUE]))
        assert response is not None and response.status == 200, path
        page.wait_for_load_state("load")
        if path.startswith("/track/"):
            graph_ready(page)
