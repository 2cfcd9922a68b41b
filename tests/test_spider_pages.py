"""The 1001tracklists spider on single pages, driven through Scrapy.

Each test builds ``HtmlResponse`` objects from saved pages and hands them to the spider's
callback (and, for non-content pages, to the block-page middleware first, as the engine does).
Real pages come from ``../shared/samples`` and are skipped when absent; the project's own
fixtures under ``tests/fixtures/1001tracklists`` always run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from scrapy import Request
from scrapy.exceptions import IgnoreRequest
from scrapy.http import FormRequest, HtmlResponse, JsonResponse, Response

from scrapers.items import SetlistItem, TrackItem
from scrapers.settings_check import project_settings
from scrapers.spiders.blocking import BlockedPageMiddleware
from scrapers.spiders.budget import ListingBudgetMiddleware
from scrapers.spiders.parsing import MAX_ROWS
from scrapers.spiders.tracklists_1001 import SEARCH_PATH, TracklistsSpider, fetch_time
from tests.conftest import SHARED_SAMPLES
from tests.project import project_crawler

SAMPLES = SHARED_SAMPLES
SITE = project_settings()["TRACKLISTS_SITE_URL"]  # the live site
SEARCH_URL = SITE + SEARCH_PATH
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "1001tracklists"
DEMO = FIXTURES / "demo_tracklist.html"
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason="shared samples not present")


def samples(kind: str) -> list[Path]:
    return sorted((SAMPLES / kind).glob("*.html")) if SAMPLES.is_dir() else []


def make_spider(**arguments: Any) -> TracklistsSpider:
    crawler = project_crawler(TracklistsSpider, ITEM_PIPELINES={})
    spider = TracklistsSpider.from_crawler(crawler, **arguments)
    crawler.spider = spider
    return spider


def response_for(body: bytes, url: str) -> HtmlResponse:
    return HtmlResponse(url=url, body=body, encoding="utf-8", request=Request(url))


def crawl_page(spider: TracklistsSpider, response: HtmlResponse) -> list[Any]:
    """What the engine does with one downloaded page: the block-page middleware first, then the
    callback, whose output passes the spider middleware that spends ``max_pages``."""
    middleware = BlockedPageMiddleware.from_crawler(spider.crawler)
    passed = middleware.process_response(response.request, response)
    assert passed is response
    output = list(spider.parse(response))
    budget = ListingBudgetMiddleware.from_crawler(spider.crawler)

    async def spent() -> list[Any]:
        async def callback_output() -> AsyncIterator[Any]:
            for entry in output:
                yield entry

        return [entry async for entry in budget.process_spider_output(response, callback_output())]

    return asyncio.run(spent())


def split_items(output: list[Any]) -> tuple[list[SetlistItem], list[TrackItem], list[Request]]:
    setlists = [item for item in output if isinstance(item, SetlistItem)]
    tracks = [item for item in output if isinstance(item, TrackItem)]
    requests = [item for item in output if isinstance(item, Request)]
    assert len(setlists) + len(tracks) + len(requests) == len(output)
    return setlists, tracks, requests


def shown_line(track: TrackItem) -> str:
    """A row the way the sidecars write it: ``NN | [cue] Artist - Title [LABEL]``."""
    position = "w/" if track["position"] is None else f"{track['position']:02d}"
    cue = ""
    if track["cue_seconds"] is not None:
        hours, rest = divmod(track["cue_seconds"], 3600)
        minutes, seconds = divmod(rest, 60)
        cue = (
            f"[{hours}:{minutes:02d}:{seconds:02d}] "
            if hours
            else f"[{minutes:02d}:{seconds:02d}] "
        )
    label = f" [{track['label']}]" if track["label"] else ""
    return f"{position} | {cue}{track['artist']} - {track['title']}{label}"


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- real pages -------------------------------------------------------------------------------


@needs_samples
@pytest.mark.parametrize("page", samples("tracklist"), ids=lambda path: path.stem)
def test_real_tracklist_page_matches_the_hand_read_facts(page: Path) -> None:
    facts = json.loads(page.with_suffix(".json").read_text())
    counts = facts["my_counts"]
    spider = make_spider()
    output = crawl_page(spider, response_for(page.read_bytes(), facts["canonical_url"]))
    setlists, tracks, requests = split_items(output)

    assert requests == []
    [setlist] = setlists
    assert setlist["source"] == "1001tracklists"
    assert setlist["source_id"] == re.search(r"/tracklist/([^/]+)/", facts["canonical_url"])[1]
    assert setlist["url"] == facts["canonical_url"]
    assert setlist["title"] == facts["set_name_meta"]
    assert setlist["djs"] == [link["text"] for link in facts["dj_links"]]
    assert setlist["event"] == (", ".join(link["text"] for link in facts["source_links"]) or None)
    assert setlist["date"] == facts["page_title"][-10:]
    assert setlist["stated_track_count"] == facts["site_stated_track_count"]
    assert setlist["genres"]

    # Every div.tlpItem row is an item; hidden mashup parts are rows too.
    assert len(tracks) == facts["site_stated_track_count"] == counts["all_rows_div_tlpItem"]
    assert [track["row_index"] for track in tracks] == list(range(len(tracks)))
    assert {track["setlist_source_id"] for track in tracks} == {setlist["source_id"]}
    visible = [track for track in tracks if track["mashup_parent_row"] is None]
    assert len(visible) == counts["visible_rows_div_tlpTog"]
    lines = [shown_line(track) for track in visible]
    assert lines[:5] == facts["first_5_visible_tracks"]
    assert lines[-3:] == facts["last_3_visible_tracks"]

    numbered = [track["position"] for track in visible if track["position"] is not None]
    assert numbered == list(range(1, int(counts["last_track_number_shown"]) + 1))
    assert sum(track["played_with_previous"] for track in tracks) == counts["w_slash_rows"]
    parts = [track for track in tracks if track["mashup_parent_row"] is not None]
    assert len(parts) == counts["hidden_mashup_part_rows_tlpSubTog"]
    assert all(tracks[part["mashup_parent_row"]]["is_mashup"] for part in parts)
    assert sum(track["is_mashup"] for track in tracks) == counts["mashup_parent_rows_subPosTog"]
    assert sum(track["cue_seconds"] is not None for track in tracks) == counts["rows_with_cue_text"]
    assert sum(track["label"] is not None for track in tracks) == counts["rows_with_label"]
    assert sum(track["is_partial_id"] for track in tracks) == counts["partial_id_rows"]

    unknown = [track for track in tracks if track["is_unknown"]]
    assert len(unknown) == counts["id_dash_id_rows"]
    for track in unknown:
        assert (track["artist"], track["title"]) == ("ID", "ID")
        assert track["artists"] == [] and track["site_track_id"] is None
    # An "ID - ID" line never passes for a real track.
    assert not any(
        (track["artist"], track["title"]) == ("ID", "ID") and not track["is_unknown"]
        for track in tracks
    )
    for track in tracks:
        if not (track["is_unknown"] or track["is_partial_id"]):
            assert {"primary"} <= {credit["role"] for credit in track["artists"]}
    assert spider.crawler.stats.get_value("tracklist/decoy_rows") is None


@needs_samples
def test_real_mashup_rows_keep_parent_parts_and_remixer() -> None:
    page = SAMPLES / "tracklist" / "Rouzax__CrateDigger__armin_marlon_ultra_miami_2026.html"
    _, tracks, _ = split_items(crawl_page(make_spider(), response_for(page.read_bytes(), SITE)))
    parent = tracks[27]
    assert parent["is_mashup"] and parent["position"] == 26 and parent["cue_seconds"] == 4235
    assert parent["artist"] == "Armin van Buuren vs. Cosmic Gate vs. Susana"
    assert parent["title"] == (
        "Space Case vs. Exploration Of Space vs. Shivers (Armin van Buuren Mashup)"
    )
    assert parent["label"] == "WAKE YOUR MIND (BLACK HOLE)/ARMIND (ARMADA)"
    assert {"name": "Armin van Buuren", "role": "remixer"} in parent["artists"]
    parts = [track for track in tracks if track["mashup_parent_row"] == 27]
    assert [f"{part['artist']} - {part['title']}" for part in parts] == [
        "Cosmic Gate - Exploration Of Space",
        "Armin van Buuren ft. Susana - Shivers (Acappella)",
        "Armin van Buuren - Space Case",
    ]
    assert all(part["position"] is None and part["cue_seconds"] is None for part in parts)
    assert {"name": "Susana", "role": "featured"} in parts[1]["artists"]


@needs_samples
@pytest.mark.parametrize("page", samples("blocked") + samples("other"), ids=lambda p: p.stem)
def test_real_non_content_page_is_counted_and_never_a_setlist(page: Path) -> None:
    facts = json.loads(page.with_suffix(".json").read_text())
    kind = {
        "blocked_forward_interstitial": "interstitial",
        "blocked_ip_limit": "ip_limit",
        "not_found_404": "not_found",
    }[facts["page_type"]]
    spider = make_spider()
    middleware = BlockedPageMiddleware.from_crawler(spider.crawler)
    response = response_for(page.read_bytes(), facts["canonical_url"])
    before = counter("crawl_blocked_pages_total", kind=kind)

    if kind == "not_found":
        with pytest.raises(IgnoreRequest):
            middleware.process_response(response.request, response)
    else:
        retry = middleware.process_response(response.request, response)
        assert isinstance(retry, Request) and retry.url == response.url
        assert retry.dont_filter and retry.meta["retry_times"] == 1
    assert counter("crawl_blocked_pages_total", kind=kind) == before + 1
    assert spider.crawler.stats.get_value(f"blocked_pages/{kind}") == 1
    # Even without the middleware the callback yields nothing from such a page.
    assert list(spider.parse(response_for(page.read_bytes(), facts["canonical_url"]))) == []


@needs_samples
@pytest.mark.parametrize("page", samples("listing"), ids=lambda path: path.stem)
def test_real_listing_page_follows_every_tracklist_and_the_next_page(page: Path) -> None:
    facts = json.loads(page.with_suffix(".json").read_text())
    url = facts["canonical_url"]
    _, _, requests = split_items(crawl_page(make_spider(), response_for(page.read_bytes(), url)))
    tracklists = [request for request in requests if "/tracklist/" in request.url]
    expected = facts.get("result_count_div_bItm_oItm")
    if expected is not None:
        assert len(tracklists) == expected
        assert tracklists[0].url == SITE + facts["first_3_results"][0]["href"]
        assert tracklists[-1].url == SITE + facts["last_result"]["href"]
    else:
        assert tracklists and all(request.url.startswith(SITE) for request in tracklists)
    [next_page] = [request for request in requests if "/tracklist/" not in request.url] or [None]
    if facts["page_type"] == "search":
        assert isinstance(next_page, FormRequest) and next_page.method == "POST"
        assert next_page.url == SEARCH_URL
        body = next_page.body.decode()
        assert "page=2" in body and "search_selection=9" in body and "main_search=" in body
    else:
        assert next_page is None


@needs_samples
def test_max_pages_limits_the_tracklists_followed_from_a_listing() -> None:
    page = SAMPLES / "listing" / "SimplicityGuy__phaze__search-amelie-lens-awakenings.html"
    spider = make_spider(max_pages="2")
    _, _, requests = split_items(crawl_page(spider, response_for(page.read_bytes(), SEARCH_URL)))
    assert len(requests) == 2 and all("/tracklist/" in request.url for request in requests)


# --- the project's own fixtures ---------------------------------------------------------------


DEMO_LINES = [
    # (position, with previous, mashup parent row, cue, artist, title, label, unknown, partial)
    (1, False, None, None, "Nova Harbor", "Lanterns", "LOWTIDE", False, False),
    (2, False, None, 195, "Kite Theory ft. Mara Lynn", "Open Water (Nova Harbor Remix)",
     "PAPER MOON/NIGHTSHIFT", False, False),
    (None, True, None, None, "Sable Drift & Orrin Vale", "Fieldnotes", "LOWTIDE", False, False),
    (3, False, None, 460, "ID", "ID", None, True, False),
    (4, False, None, 665, "Orrin Vale", "ID", None, False, True),
    (5, False, None, 930, "Nova Harbor vs. Kite Theory",
     "Lanterns vs. Open Water (Sable Drift Mashup)", "LOWTIDE/PAPER MOON", False, False),
    (None, False, 5, None, "Nova Harbor", "Lanterns", "LOWTIDE", False, False),
    (None, False, 5, None, "Kite Theory", "Open Water", "PAPER MOON", False, False),
    (6, False, None, 3750, "Juno Reyes & Tamsin Cole", "Hollow Light", "NIGHTSHIFT", False, False),
    (7, False, None, 3960, "Tamsin Cole", "Last Ferry (Live Edit)", None, False, False),
]  # fmt: skip


def test_demo_fixture_rows(caplog: pytest.LogCaptureFixture) -> None:
    spider = make_spider()
    decoys_before = counter("crawl_decoy_rows_total")
    with caplog.at_level(logging.WARNING):
        output = crawl_page(spider, response_for(DEMO.read_bytes(), DEMO.as_uri()))
    setlists, tracks, _ = split_items(output)
    # The page's fetch time, on the setlist and every row: now, in UTC.
    fetched_at = dt.datetime.fromisoformat(setlists[0].pop("fetched_at"))
    assert fetched_at.utcoffset() == dt.timedelta(0)
    assert abs(dt.datetime.now(dt.UTC) - fetched_at) < dt.timedelta(minutes=5)
    assert {track.pop("fetched_at") for track in tracks} == {fetched_at.isoformat()}
    assert dict(setlists[0]) == {
        "source": "1001tracklists",
        "source_id": "9demo01x",
        "url": "https://www.1001tracklists.com/tracklist/9demo01x/"
        "nova-harbor-pier-stage-lowtide-festival-netherlands-2025-06-14.html",
        "title": "Nova Harbor @ Pier Stage, Lowtide Festival, Netherlands 2025-06-14",
        "djs": ["Nova Harbor"],
        "event": "Lowtide Festival",
        "date": "2025-06-14",
        "genres": ["Deep House", "Melodic House"],
        "stated_track_count": 10,
    }
    got = [
        (
            track["position"],
            track["played_with_previous"],
            track["mashup_parent_row"],
            track["cue_seconds"],
            track["artist"],
            track["title"],
            track["label"],
            track["is_unknown"],
            track["is_partial_id"],
        )
        for track in tracks
    ]
    assert got == DEMO_LINES
    assert tracks[1]["artists"] == [
        {"name": "Kite Theory", "role": "primary"},
        {"name": "Mara Lynn", "role": "featured"},
        {"name": "Nova Harbor", "role": "remixer"},
    ]
    assert tracks[3]["artists"] == [] and tracks[3]["site_track_id"] is None
    assert tracks[4]["artists"] == [{"name": "Orrin Vale", "role": "primary"}]
    assert tracks[5]["is_mashup"] and tracks[5]["site_track_id"] == "dm1aa06"
    assert tracks[6]["site_track_id"] == "dm1aa01"  # a part's id comes from its microdata
    # The decoy row: visible "Pell Garnet", microdata "Juno Reyes & Tamsin Cole".
    assert "Pell Garnet" not in json.dumps([dict(track) for track in tracks])
    assert counter("crawl_decoy_rows_total") == decoys_before + 1
    assert spider.crawler.stats.get_value("tracklist/decoy_rows") == 1
    assert "1 rows showed a decoy artist" in caplog.text


@pytest.mark.parametrize(
    ("fixture", "kind"),
    [
        ("blocked_interstitial.html", "interstitial"),
        ("blocked_ip_limit.html", "ip_limit"),
        ("blocked_captcha.html", "captcha"),
        ("not_found.html", "not_found"),
    ],
)
def test_own_non_content_pages(fixture: str, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    spider = make_spider()
    middleware = BlockedPageMiddleware.from_crawler(spider.crawler)
    url = f"{SITE}/tracklist/9demo01x/nova-harbor.html"
    response = response_for((FIXTURES / fixture).read_bytes(), url)
    before = counter("crawl_blocked_pages_total", kind=kind)
    with caplog.at_level(logging.WARNING):
        try:
            outcome: Any = middleware.process_response(response.request, response)
        except IgnoreRequest as exc:
            outcome = exc
    assert counter("crawl_blocked_pages_total", kind=kind) == before + 1
    assert url in caplog.text and kind in caplog.text
    if kind == "not_found":
        assert isinstance(outcome, IgnoreRequest)
    else:
        assert isinstance(outcome, Request) and outcome.meta["retry_times"] == 1
    assert list(spider.parse(response)) == []


def test_block_counter_resets_on_content_and_retries_run_out() -> None:
    spider = make_spider()
    middleware = BlockedPageMiddleware.from_crawler(spider.crawler)
    blocked = response_for((FIXTURES / "blocked_interstitial.html").read_bytes(), SITE + "/a")
    retry = middleware.process_response(blocked.request, blocked)
    assert middleware.in_row == 1
    demo = response_for(DEMO.read_bytes(), SITE + "/b")
    assert middleware.process_response(demo.request, demo) is demo
    assert middleware.in_row == 0
    for _ in range(middleware.retry_times - 1):
        again = response_for(blocked.body, retry.url)
        retry = middleware.process_response(retry, again)
    with pytest.raises(IgnoreRequest, match="retries"):
        middleware.process_response(retry, response_for(blocked.body, retry.url))


def test_http_error_pages_are_left_to_scrapy_and_binary_bodies_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    spider = make_spider()
    middleware = BlockedPageMiddleware.from_crawler(spider.crawler)
    url = f"{SITE}/tracklist/9demo01x/x.html"
    before = counter("crawl_blocked_pages_total", kind="empty")
    error = HtmlResponse(
        url, status=503, body=b"<html><body>busy</body></html>", request=Request(url)
    )
    assert middleware.process_response(error.request, error) is error  # RetryMiddleware's turn
    assert counter("crawl_blocked_pages_total", kind="empty") == before
    with caplog.at_level(logging.WARNING):
        assert list(spider.parse(Response(url, body=b"\x89PNG", request=Request(url)))) == []
    assert "Not an HTML page" in caplog.text


def test_listing_fixture_pagination_and_max_pages() -> None:
    url = "http://127.0.0.1:8000/dj/novaharbor/index.html"
    page = (FIXTURES / "listing_page1.html").read_bytes()
    _, _, requests = split_items(crawl_page(make_spider(), response_for(page, url)))
    assert [request.url for request in requests] == [
        "http://127.0.0.1:8000/tracklist/9demo01x/"
        "nova-harbor-pier-stage-lowtide-festival-netherlands-2025-06-14.html",
        "http://127.0.0.1:8000/tracklist/9demo02x/nova-harbor-harbour-sessions-005-2025-05-02.html",
        "http://127.0.0.1:8000/dj/novaharbor/index2.html",
    ]
    last = (FIXTURES / "listing_page2.html").read_bytes()
    _, _, requests = split_items(crawl_page(make_spider(), response_for(last, url)))
    assert len(requests) == 2 and all("/tracklist/" in request.url for request in requests)
    _, _, limited = split_items(crawl_page(make_spider(max_pages=1), response_for(page, url)))
    assert [request.url for request in limited] == [requests[1].url]


def test_truncated_page_keeps_what_is_there_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    html = DEMO.read_bytes()
    # Cut inside the eighth row, before its track text.
    truncated = html[: html.index(b"<i class", html.index(b'<div id="tlp_7"'))]
    with caplog.at_level(logging.WARNING):
        output = crawl_page(make_spider(), response_for(truncated, DEMO.as_uri()))
    setlists, tracks, _ = split_items(output)
    assert len(setlists) == 1 and len(tracks) == 7
    assert "states 10 tracks but has 8 rows" in caplog.text
    assert "no track text, row skipped" in caplog.text


def test_a_page_from_the_site_cut_before_its_end_is_retried_not_stored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    spider = make_spider()
    middleware = BlockedPageMiddleware.from_crawler(spider.crawler)
    html = DEMO.read_bytes()
    cut = response_for(html[: len(html) // 2], f"{SITE}/tracklist/9demo01x/x.html")
    with caplog.at_level(logging.WARNING):
        retry = middleware.process_response(cut.request, cut)
    assert isinstance(retry, Request) and retry.meta["retry_times"] == 1
    assert spider.crawler.stats.get_value("incomplete_pages") == 1
    assert "Incomplete page (stops before </html>), retrying" in caplog.text
    whole = response_for(html, retry.url)
    assert middleware.process_response(retry, whole) is whole
    for _ in range(spider.crawler.settings.getint("RETRY_TIMES") - 1):
        retry = middleware.process_response(retry, response_for(cut.body, retry.url))
    with pytest.raises(IgnoreRequest, match="incomplete page"):
        middleware.process_response(retry, response_for(cut.body, retry.url))


def test_page_without_microdata_falls_back_to_visible_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    html = re.sub(rb' item(?:prop|scope|type)(?:="[^"]*")?', b"", DEMO.read_bytes())
    assert b"itemprop" not in html
    with caplog.at_level(logging.WARNING):
        output = crawl_page(make_spider(), response_for(html, DEMO.as_uri()))
    setlists, tracks, _ = split_items(output)
    assert (
        setlists[0]["title"] == "Nova Harbor @ Pier Stage, Lowtide Festival, Netherlands 2025-06-14"
    )
    assert setlists[0]["date"] == "2025-06-14" and setlists[0]["djs"] == ["Nova Harbor"]
    assert len(tracks) == 10 and tracks[1]["artist"] == "Kite Theory ft. Mara Lynn"
    assert "no MusicPlaylist microdata" in caplog.text
    assert "no track microdata, visible text used" in caplog.text


def test_garbage_page_does_not_crash(caplog: pytest.LogCaptureFixture) -> None:
    garbage = b"<html><body><div class='tlpItem'><span class='trackValue'>no dash"
    with caplog.at_level(logging.WARNING):
        output = list(make_spider().parse(response_for(garbage, "file:///tmp/x.html")))
    assert output == []
    assert "no tracklist id" in caplog.text


def start_requests(**arguments: Any) -> list[Request]:
    async def collect() -> list[Request]:
        return [request async for request in make_spider(**arguments).start()]

    return asyncio.run(collect())


def test_spider_arguments_choose_the_start_pages() -> None:
    assert [request.url for request in start_requests()] == [f"{SITE}/"]
    [search] = start_requests(search="  Amelie   Lens ")
    assert isinstance(search, FormRequest) and search.method == "POST"
    assert search.url == SEARCH_URL and b"main_search=Amelie+Lens" in search.body
    assert [request.url for request in start_requests(dj="bicep")] == [
        f"{SITE}/dj/bicep/index.html"
    ]
    urls = start_requests(start_urls=f"{DEMO.as_uri()}, https://www.1001tracklists.com/x.html")
    assert [request.url for request in urls] == [
        DEMO.as_uri(),
        "https://www.1001tracklists.com/x.html",
    ]
    assert all(request.meta["allow_offsite"] for request in urls)


@pytest.mark.parametrize(
    "arguments",
    [
        {"dj": "../etc/passwd"},
        {"max_pages": "0"},
        {"max_pages": "two"},
        {"start_urls": "javascript:alert(1)"},
        {"search": "x" * 151},
    ],
)
def test_bad_spider_arguments_are_refused(arguments: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        make_spider(**arguments)


# --- text quality, non-HTML answers, truncation, offline crawls (issue 11) ---------------------


TEXT_QUALITY = FIXTURES / "text_quality_tracklist.html"


def test_credits_spacing_brackets_and_cut_microdata() -> None:
    spider = make_spider()
    decoys_before = counter("crawl_decoy_rows_total")
    output = crawl_page(spider, response_for(TEXT_QUALITY.read_bytes(), TEXT_QUALITY.as_uri()))
    _, tracks, _ = split_items(output)
    assert [(track["artist"], track["title"]) for track in tracks] == [
        # "(Co-Prod. by X)" in its own span.italic.spL is a credit, not title text.
        ("Kite Theory", "Pressure (Sable Drift Remix)"),
        ("Tamsin Cole", "Night Bus"),
        # "spR" puts a space after "pres." through CSS only.
        ("Nova Harbor pres. Lowtide Sound", "Harbour Lights"),
        # Re-serialised "( Pell Garnet Remix )".
        ("Mara Lynn", "Paper Boats (Pell Garnet Remix)"),
        # The microdata is cut at the front ("ven & Sable Drift …"): the visible name stays.
        (
            "Juno Reyes & Tamsin Cole & Ulla Steven & Sable Drift & Orrin Vale vs. Kite Theory",
            "Fieldnotes vs. Pressure (Nova Harbor Mashup)",
        ),
        # The microdata lacks the country tag: a variant, not a decoy.
        ("Orrin Vale (SE)", "Salt Roads"),
        # A decoy: the names differ outright, the microdata wins.
        ("Juno Reyes", "Hollow Light"),
    ]
    assert tracks[0]["metadata"] == {"credits": [{"name": "Orrin Vale", "role": "co-producer"}]}
    assert tracks[1]["metadata"] == {
        "credits": [{"name": "Juno Reyes & Mara Lynn", "role": "producer"}]
    }
    assert all("metadata" not in track for track in tracks[2:])
    assert {"name": "Pell Garnet", "role": "remixer"} in tracks[3]["artists"]
    assert counter("crawl_decoy_rows_total") == decoys_before + 1
    assert spider.crawler.stats.get_value("tracklist/decoy_rows") == 1


def test_json_response_is_a_counted_non_content_page(caplog: pytest.LogCaptureFixture) -> None:
    spider = make_spider()
    url = f"{SITE}/tracklist/9demo01x/x.html"
    before = counter("crawl_blocked_pages_total", kind="not_html")
    json_answer = JsonResponse(url, body=b'{"error": "rate limited"}', request=Request(url))
    with caplog.at_level(logging.WARNING):
        assert crawl_page(spider, json_answer) == []
    assert counter("crawl_blocked_pages_total", kind="not_html") == before + 1
    assert spider.crawler.stats.get_value("blocked_pages/not_html") == 1
    assert f"Not an HTML page, skipped: {url}" in caplog.text


def test_page_over_the_row_limit_is_counted(caplog: pytest.LogCaptureFixture) -> None:
    html = DEMO.read_bytes()
    first_row = html.index(b'<div id="tlp_5000001"')
    row = html[first_row : html.index(b'<div id="tlp_5000002"')]
    extra = MAX_ROWS + 3 - 10
    page = html[:first_row] + row * extra + html[first_row:]
    spider = make_spider()
    before = counter("crawl_pages_truncated_total")
    with caplog.at_level(logging.WARNING):
        _, tracks, _ = split_items(crawl_page(spider, response_for(page, DEMO.as_uri())))
    assert len(tracks) == MAX_ROWS
    assert counter("crawl_pages_truncated_total") == before + 1
    assert spider.crawler.stats.get_value("tracklist/pages_truncated") == 1
    assert spider.crawler.stats.get_value("tracklist/rows_dropped") == 3
    assert f"3 rows past the first {MAX_ROWS} dropped" in caplog.text


def test_offline_crawl_never_follows_links_to_the_live_site() -> None:
    saved_search = FIXTURES / "search_results.html"
    spider = make_spider(start_urls=saved_search.as_uri())
    _, _, requests = split_items(
        crawl_page(spider, response_for(saved_search.read_bytes(), saved_search.as_uri()))
    )
    # The tracklist links resolve to local files; the search form's next page is not posted.
    assert [request.url for request in requests] == [
        "file:///tracklist/9demo04x/nova-harbor-sunset-terrace-2024-08-30.html",
        "file:///tracklist/9demo05x/kite-theory-nova-harbor-b2b-2024-07-12.html",
    ]
    assert spider.crawler.stats.get_value("offline/links_not_followed") == 1
    listing = (FIXTURES / "listing_page1.html").read_bytes()
    absolute = listing.replace(
        b'href="/dj/novaharbor/index2.html"', f'href="{SITE}/x2.html"'.encode()
    )
    _, _, requests = split_items(crawl_page(spider, response_for(absolute, DEMO.as_uri())))
    assert requests and all(request.url.startswith("file:///") for request in requests)
    # Started from the site, the same page is followed as before.
    online = make_spider(start_urls=f"{SITE}/search/result.php")
    response = response_for(saved_search.read_bytes(), SEARCH_URL)
    _, _, requests = split_items(crawl_page(online, response))
    assert isinstance(requests[-1], FormRequest) and requests[-1].url == SEARCH_URL


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"max_pages": "-1"}, "max_pages: must be at least 1, got -1"),
        ({"search": "x" * 200}, "search: at most 150 characters, got 200"),
        ({"dj": "a/b", "max_pages": "3"}, "dj: not a DJ slug"),
    ],
)
def test_check_arguments_refuses_what_the_spider_would(
    arguments: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        TracklistsSpider.check_arguments(arguments)
    TracklistsSpider.check_arguments({"max_pages": "2", "search": "Nova Harbor", "other": "x"})


def test_a_page_replayed_from_the_http_cache_keeps_the_time_the_site_answered_it() -> None:
    """A cached page is as old as the site's answer: replaying it must never count as a newer
    fetch than a later crawl's (the newest fetch of a set wins in the catalogue)."""
    url = "https://www.1001tracklists.com/tracklist/9demo01x/x.html"
    dated = {"Date": "Sun, 01 Nov 2026 10:00:00 GMT"}
    cached = HtmlResponse(url=url, body=b"", headers=dated, flags=["cached"])
    assert fetch_time(cached) == "2026-11-01T10:00:00+00:00"
    fresh = dt.datetime.fromisoformat(fetch_time(HtmlResponse(url=url, body=b"", headers=dated)))
    assert abs(dt.datetime.now(dt.UTC) - fresh) < dt.timedelta(minutes=5)
    undated = HtmlResponse(url=url, body=b"", flags=["cached"])
    assert dt.datetime.fromisoformat(fetch_time(undated)).utcoffset() == dt.timedelta(0)
