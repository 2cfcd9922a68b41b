"""The web explorer over HTTP (uvicorn, a real PostgreSQL): pages, the JSON API, downloads,
read-only transactions, errors, metrics, and ``scripts/web.py``'s start-up and exit codes."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import closing
from datetime import date, timedelta
from pathlib import Path

import psycopg2
import psycopg2.errors
import pytest

from scrapers.db.explore import TrackRef
from scrapers.db.server.connection import connect
from scrapers.explorer import playlists
from scrapers.explorer.web import views
from scrapers.explorer.web.catalogue import ReadOnlyCatalogue
from scrapers.serving import Server
from tests.conftest import REPO_ROOT
from tests.explore_pages import page_items, store
from tests.explorer_server import get, serving
from tests.web_catalogue import APRICOTS, FOLLOWERS_OF_GLUE, GLUE, NEVER_COME_BACK, SO_U_KNO, build

WEB = REPO_ROOT / "scrapers" / "explorer" / "web"
# The module's scene is built once: its tests run on one xdist worker.
pytestmark = pytest.mark.xdist_group("explorer_web")


@pytest.fixture(scope="module")
def scene(make_database) -> tuple[str, dict[tuple[str, str], str]]:
    url = make_database()
    return url, build(url)


@pytest.fixture(scope="module")
def explorer(scene) -> Iterator[Server]:
    with serving(scene[0]) as server:
        yield server


@pytest.fixture(scope="module")
def ids(scene) -> dict[tuple[str, str], str]:
    return scene[1]


def counted(rows: list[dict]) -> dict[tuple[str, str], tuple[int, int]]:
    return {
        (row["track"]["artist"], row["track"]["title"]): (row["plays"]["sets"], row["plays"]["djs"])
        for row in rows
    }


def test_the_track_api_gives_followers_predecessors_and_the_graph(explorer, ids) -> None:
    answer = get(f"{explorer.url}/api/tracks/{ids[GLUE]}").json()
    followers = answer["neighbourhood"]["followers"]
    assert counted(followers) == FOLLOWERS_OF_GLUE
    assert (followers[0]["track"]["artist"], followers[0]["track"]["title"]) == APRICOTS
    assert counted(answer["neighbourhood"]["predecessors"]) == {
        NEVER_COME_BACK: (2, 2),
        ("RÜFÜS DU SOL", "Innerbloom"): (1, 1),
        ("Bonobo", "Kerala"): (1, 1),
    }
    assert counted(answer["neighbourhood"]["with_tracks"]) == {
        ("Floating Points", "LesAlpx"): (1, 1)
    }
    assert (answer["plays"]["sets"], answer["plays"]["djs"]) == (6, 4)
    graph = answer["graph"]
    edges = {(e["source"], e["target"]): e["sets"] for e in graph["edges"]}
    assert edges[(ids[GLUE], ids[APRICOTS])] == 3
    assert edges[(ids[NEVER_COME_BACK], ids[GLUE])] == 2
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert nodes[ids[GLUE]]["role"] == "centre" and nodes[ids[GLUE]]["plays"] == 6
    # A node's size is the track's own plays, not the edge's: Apricots is in 3 sets.
    assert nodes[ids[APRICOTS]]["plays"] == 3 and nodes[ids[APRICOTS]]["role"] == "follower"
    assert len(nodes) == 1 + len(FOLLOWERS_OF_GLUE) + 3


def test_the_track_page_lists_what_the_api_says(explorer, ids) -> None:
    page = get(f"{explorer.url}/track/{ids[GLUE]}")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    followers = page.text.split('data-testid="followers"')[1].split("</table>")[0]
    rows = re.findall(
        r'data-track-id="([^"]+)".*?class="num sets">(\d+)<.*?class="num djs">(\d+)<',
        followers,
        re.S,
    )
    shown = {track: (int(sets), int(djs)) for track, sets, djs in rows}
    assert shown == {ids[name]: counts for name, counts in FOLLOWERS_OF_GLUE.items()}
    assert rows[0][0] == ids[APRICOTS], "most played first"
    graph = json.loads(page.text.split('id="graph-data" type="application/json">')[1].split("<")[0])
    assert {n["id"] for n in graph["nodes"]} >= {ids[GLUE], ids[APRICOTS]}


def test_search_finds_by_name_typo_and_shows_djs(explorer, ids) -> None:
    exact = get(f"{explorer.url}/api/search?q=" + urllib.parse.quote("Bicep - Glue")).json()
    assert exact["results"][0]["track"]["id"] == ids[GLUE]
    typo = get(f"{explorer.url}/api/search?q=bicep+glew").json()
    assert ids[GLUE] in [hit["track"]["id"] for hit in typo["results"]]
    page = get(f"{explorer.url}/?q=ben+ufo")
    assert page.status == 200 and "/dj?name=Ben%20UFO" in page.text


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/search?q=", 400),
        ("/api/search?q=" + "x" * 301, 400),
        ("/api/tracks/not-a-uuid", 400),
        ("/api/tracks/00000000-0000-0000-0000-000000000000", 404),
        ("/api/tracks/00000000-0000-0000-0000-000000000000?limit=1000", 400),
        ("/api/dj?name=Nobody+At+All", 404),
        ("/api/setlists/no-such-set", 404),
        ("/api/top?since=2025-06-01&until=2025-01-01", 400),
        ("/api/path?from=Bicep+-+Glue&to=Nothing+Like+It+zzzq", 404),
        ("/api/path?from=Bicep+-+Glue&to=Bicep+-+Apricots&bpm_window=lots", 400),
        ("/api/path?from=Bicep+-+Glue&to=Bicep+-+Apricots&bpm_window=90", 400),
        ("/api/path?from=Bicep+-+Glue&to=Bicep+-+Apricots&max_steps=11", 400),
        # A missing end or an id that is no id is a bad parameter, not a track not found.
        ("/api/path", 400),
        ("/api/path?from=Bicep+-+Glue", 400),
        ("/api/path?to=Bicep+-+Glue", 400),
        ("/api/path?from_id=not-an-id&to=Bicep+-+Glue", 400),
        ("/api/path?from_id=00000000-0000-0000-0000-000000000000&to=Bicep+-+Glue", 404),
        ("/api/nowhere", 404),
    ],
)
def test_api_errors_are_json_saying_why(explorer, path: str, status: int) -> None:
    answer = get(explorer.url + path)
    assert answer.status == status, answer.text
    assert answer.json()["error"]


def test_page_errors_are_pages(explorer) -> None:
    missing = get(f"{explorer.url}/track/00000000-0000-0000-0000-000000000000")
    assert missing.status == 404 and missing.headers["content-type"].startswith("text/html")
    assert "no track with id" in missing.text
    assert get(f"{explorer.url}/nowhere").status == 404


def test_a_method_http_does_not_define_is_501(explorer) -> None:
    assert get(f"{explorer.url}/api/search?q=x", method="BREW").status == 501


def test_the_setlist_page_shows_rows_as_the_site_does(explorer, ids) -> None:
    page = get(f"{explorer.url}/setlist/set-c").text
    rows = page.split('data-testid="setlist"')[1].split("</table>")[0].split("<tr")[2:]
    positions = [re.search(r'class="num pos">([^<]*)<', row).group(1) for row in rows]
    assert positions == ["01", "02", "03", "04", "↳", "↳"]
    assert f'href="/track/{ids[GLUE]}"' in rows[1]
    with_row = get(f"{explorer.url}/setlist/set-a").text.split('data-testid="setlist"')[1]
    assert ">w/<" in with_row
    unknown = get(f"{explorer.url}/setlist/set-b").text
    assert 'class="chip faint">unknown<' in unknown
    assert '/dj?name=Peggy%20Gou"' in unknown


def test_the_dj_and_top_pages(explorer, ids) -> None:
    dj = get(f"{explorer.url}/api/dj?name=Ben+UFO").json()
    assert [s["source_id"] for s in dj["sets"]] == ["set-c", "set-a"]
    # A transition's ends are "from" and "to" everywhere, as in `tracklists-explore top --json`.
    transitions = {(t["from"]["id"], t["to"]["id"]): t for t in dj["top_transitions"]}
    assert transitions[(ids[GLUE], ids[APRICOTS])]["plays"]["sets"] == 2
    top = get(f"{explorer.url}/api/top?since=2025-01-01").json()  # the scene is older than a year
    assert top["tracks"][0]["track"]["id"] == ids[GLUE]
    assert (top["transitions"][0]["from"]["id"], top["transitions"][0]["to"]["id"]) == (
        ids[GLUE],
        ids[APRICOTS],
    )
    spring = get(f"{explorer.url}/api/top?since=2025-04-01&until=2025-05-31").json()
    assert {t["track"]["id"] for t in spring["tracks"]} >= {ids[GLUE]}
    assert ids[NEVER_COME_BACK] not in {t["track"]["id"] for t in spring["tracks"]}
    assert get(f"{explorer.url}/top?genre=techno").status == 200
    assert "Ben UFO" in get(f"{explorer.url}/dj?name=Ben+UFO").text


def path_query(source: tuple[str, str], target: tuple[str, str], **rules: str) -> str:
    return urllib.parse.urlencode({"from": " - ".join(source), "to": " - ".join(target), **rules})


def test_the_set_builder_finds_the_most_played_shortest_path(explorer, ids) -> None:
    answer = get(f"{explorer.url}/api/path?{path_query(NEVER_COME_BACK, SO_U_KNO)}").json()
    assert answer["found"] is True
    assert [step["track"]["id"] for step in answer["steps"]] == [
        ids[NEVER_COME_BACK],
        ids[GLUE],
        ids[APRICOTS],
        ids[SO_U_KNO],
    ]
    assert [step["sets"] for step in answer["steps"]] == [None, 2, 3, 1]
    # Each step also names its track at the top level, as `tracklists-explore path --json` does.
    assert [(step["artist"], step["title"]) for step in answer["steps"]] == [
        NEVER_COME_BACK,
        GLUE,
        APRICOTS,
        SO_U_KNO,
    ]
    # A BPM window of 2 % forbids Apricots (124) -> So U Kno (132) and Glue -> Opus (126 is
    # within 2 % of 125, Opus -> So U Kno is not): no path.
    narrow = get(f"{explorer.url}/api/path?{path_query(NEVER_COME_BACK, SO_U_KNO, bpm_window='2')}")
    assert narrow.json()["found"] is False and narrow.json()["reason"]
    short = get(f"{explorer.url}/api/path?{path_query(NEVER_COME_BACK, SO_U_KNO, max_steps='2')}")
    assert short.json()["found"] is False
    by_id = get(
        f"{explorer.url}/api/path?from_id={ids[GLUE]}&to_id={ids[APRICOTS]}&from=x&to=y"
    ).json()
    assert [step["track"]["id"] for step in by_id["steps"]] == [ids[GLUE], ids[APRICOTS]]


def test_the_set_builder_page_shows_the_path_and_links_its_downloads(explorer, ids) -> None:
    query = path_query(NEVER_COME_BACK, SO_U_KNO, harmonic="true")
    page = get(f"{explorer.url}/path?{query}").text
    steps = re.findall(r'class="step" data-track-id="([^"]+)"', page)
    # Harmonic keys: 9A -> 8A -> 8A -> 9A are Camelot neighbours all the way.
    assert steps == [ids[NEVER_COME_BACK], ids[GLUE], ids[APRICOTS], ids[SO_U_KNO]]
    assert f'href="/path/playlist.jspf?{query.replace("&", "&amp;")}"' in page
    empty = get(f"{explorer.url}/path").text
    assert 'id="builder"' in empty and 'data-testid="path-result"' not in empty
    missing = get(f"{explorer.url}/path?from=Bicep+-+Glue&to=zzqq+xxyy+nothing").text
    assert "no track matches to" in missing


def test_downloads_are_playlists_in_each_format(explorer, ids) -> None:
    jspf = get(f"{explorer.url}/track/{ids[GLUE]}/played-after.jspf")
    assert jspf.headers["content-type"].startswith("application/jspf+json")
    assert jspf.headers["content-disposition"] == (
        'attachment; filename="played-after-bicep-glue.jspf"'
    )
    tracks = json.loads(jspf.body)["playlist"]["track"]
    assert [(t["creator"], t["title"]) for t in tracks][:2] == [GLUE, APRICOTS]
    m3u = get(f"{explorer.url}/setlist/set-a/tracks.m3u").text
    assert m3u.startswith("#EXTM3U") and m3u.count("#EXTINF") == 5
    rows = list(
        csv.DictReader(
            io.StringIO(
                get(
                    f"{explorer.url}/path/playlist.csv?{path_query(NEVER_COME_BACK, SO_U_KNO)}"
                ).text
            )
        )
    )
    assert [(r["artist"], r["title"], r["sets"]) for r in rows] == [
        (*NEVER_COME_BACK, ""),
        (*GLUE, "2"),
        (*APRICOTS, "3"),
        (*SO_U_KNO, "1"),
    ]
    assert get(f"{explorer.url}/path/playlist.csv").status == 400
    assert get(f"{explorer.url}/track/{ids[GLUE]}/played-after.mp3").status == 400


def test_an_unknown_track_id_is_named_in_the_answer(explorer) -> None:
    unknown = "00000000-0000-0000-0000-000000000000"
    answer = get(f"{explorer.url}/api/path?from_id={unknown}&to=Bicep+-+Glue")
    assert unknown in answer.json()["error"]


def test_a_download_of_any_script_gets_an_ascii_file_name() -> None:
    track = TrackRef("0", "坂本龍一", "Energy Flow")
    _, _, name = views.download(playlists.from_followers(track, ()), playlists.Format.CSV)
    assert name == "played-after-energy-flow.csv"
    _, _, name = views.download(playlists.Playlist("東京", ()), playlists.Format.M3U)
    assert name == "playlist.m3u8"


def test_openapi_is_served_locally_and_swagger_ui_is_off(explorer) -> None:
    document = get(f"{explorer.url}/api/openapi.json").json()
    assert {"/api/search", "/api/tracks/{track_id}", "/api/path"} <= set(document["paths"])
    assert get(f"{explorer.url}/docs").status == 404
    assert get(f"{explorer.url}/redoc").status == 404
    docs = get(f"{explorer.url}/api/docs").text
    assert "/api/tracks/{track_id}" in docs and "cdn" not in docs.lower()


def test_every_request_reads_in_a_read_only_transaction_with_a_timeout(scene) -> None:
    catalogue = ReadOnlyCatalogue(scene[0], size=1, statement_timeout_ms=1234)
    try:
        with catalogue.transaction() as connection, connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone() == ("1234ms",)
            cursor.execute("SHOW transaction_read_only")
            assert cursor.fetchone() == ("on",)
            with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
                cursor.execute("DELETE FROM setlists")
        # The pooled connection comes back clean: a new transaction, read-only again.
        with catalogue.transaction() as connection, connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM setlists")
            assert cursor.fetchone() == (6,)
            cursor.execute("SHOW transaction_read_only")
            assert cursor.fetchone() == ("on",)
    finally:
        catalogue.close()


def test_a_query_past_its_statement_timeout_is_a_503(scene, ids) -> None:
    """A page whose query waits on a lock longer than the timeout answers 503, and the pool
    keeps working once the lock is gone."""
    catalogue = ReadOnlyCatalogue(scene[0], size=2, statement_timeout_ms=300)
    with serving(scene[0], catalogue) as server, closing(connect(scene[0])) as locker:
        with locker.cursor() as cursor:
            cursor.execute("LOCK TABLE setlist_tracks IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        slow = get(f"{server.url}/api/tracks/{ids[GLUE]}")
        assert slow.status == 503 and "took too long" in slow.json()["error"]
        assert time.monotonic() - started < 10
        page = get(f"{server.url}/track/{ids[GLUE]}")
        assert page.status == 503 and page.headers["content-type"].startswith("text/html")
        locker.rollback()
        assert get(f"{server.url}/api/tracks/{ids[GLUE]}").status == 200


def test_a_database_that_cannot_be_reached_is_a_503() -> None:
    broken = "postgresql://nobody@127.0.0.1:9/none?connect_timeout=2"
    with serving(broken) as server:
        answer = get(f"{server.url}/api/search?q=glue")
        assert answer.status == 503 and "cannot be read" in answer.json()["error"]
        assert get(f"{server.url}/static/explorer.css").status == 200


def test_request_latency_is_a_histogram_by_route_template(explorer, ids) -> None:
    for track in list(ids.values())[:5]:
        get(f"{explorer.url}/track/{track}")
    get(f"{explorer.url}/static/explorer.css")
    # A request is observed once its answer is sent: the scrape may come a moment before.
    deadline = time.monotonic() + 10
    while True:
        exposition = get(f"{explorer.url}/metrics").text
        samples = [
            line
            for line in exposition.splitlines()
            if line.startswith("explorer_request_duration_seconds_count")
        ]
        if any('route="/static"' in line for line in samples) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert any('route="/track/{track_id}"' in line and 'status="2xx"' in line for line in samples)
    assert any('route="/static"' in line for line in samples)
    labels = " ".join(samples)
    assert not any(track in labels for track in ids.values()), "a path leaked into a label"


# scripts/web.py


def run_web(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "web.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def script_env(database_url: str, **extra: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("EXPLORER_")},
        "DATABASE_URL": database_url,
        **extra,
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--port", "70000"],
            "Cannot start: EXPLORER_PORT must be a whole number of at least 0 and at most 65535,"
            " got '70000'",
        ),
        (["--port", "web"], "Cannot start: EXPLORER_PORT must be a whole number"),
        (["-s", "EXPLORER_STATEMENT_TIMEOUT_MS=0"], "Cannot start: EXPLORER_STATEMENT_TIMEOUT_MS"),
        (["--host", "no-such-host.invalid"], "Cannot start: cannot listen on no-such-host.invalid"),
        # An empty host is every interface to asyncio: it served on 0.0.0.0.
        (["--host", "", "--port", "0"], "Cannot start: EXPLORER_HOST must be an address"),
        (["-s", "EXPLORER_HOST=", "--port", "0"], "Cannot start: EXPLORER_HOST must be an address"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(scene, args: list[str], message: str) -> None:
    done = run_web(*args, env=script_env(scene[0]))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), done.stderr


def test_a_port_in_use_and_a_bad_explorer_url_are_exit_2(scene) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_web("--port", str(port), env=script_env(scene[0]))
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(f"Cannot start: cannot listen on 127.0.0.1:{port}: ")
    )
    bad = run_web(
        env=script_env(scene[0], EXPLORER_DATABASE_URL="postgresql://x:secret@h/db?nonsense=1")
    )
    assert bad.returncode == 2 and "EXPLORER_DATABASE_URL is not a valid" in bad.stderr
    assert "secret" not in bad.stderr


def test_an_old_schema_is_exit_2(make_database) -> None:
    done = run_web("--port", "0", env=script_env(make_database("001_initial_schema")))
    assert done.returncode == 2 and "migrate.py up" in done.stderr


def test_the_command_serves_on_127_0_0_1_and_stops_on_sigterm(scene, ids, tmp_path: Path) -> None:
    """``EXPLORER_DATABASE_URL`` is read before ``DATABASE_URL``; SIGTERM ends with 0."""
    log = tmp_path / "web.log"
    env = script_env("postgresql://nobody@127.0.0.1:9/none", EXPLORER_DATABASE_URL=scene[0])
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, str(REPO_ROOT / "scripts" / "web.py"), "--port", "0"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
        )
    try:
        deadline = time.monotonic() + 60
        while not (
            found := re.search(r"Web explorer on (http://127\.0\.0\.1:\d+)", log.read_text())
        ):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        url = found.group(1)
        assert get(f"{url}/api/tracks/{ids[GLUE]}").status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0, log.read_text()
    assert "read-only" in log.read_text()


def test_no_template_or_script_of_ours_loads_anything_from_elsewhere() -> None:
    """Offline: our pages reference only their own paths (the browser test checks requests)."""
    own = [*WEB.glob("templates/*.html"), *WEB.glob("static/*.js"), *WEB.glob("static/*.css")]
    assert own
    loading = re.compile(
        r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|@import"""
    )
    offenders = [str(path) for path in own if loading.search(path.read_text())]
    assert offenders == []


def test_names_and_links_from_pages_cannot_script_the_explorer(make_database) -> None:
    """What the crawl stored is untrusted: names are escaped, and only http(s) links are links."""
    url = make_database()
    items = page_items("set-x", ["<script>alert(1)</script> - </script><b>x", "Bicep - Glue"])
    items[-1]["url"] = "javascript:alert(1)"
    store(url, items)
    with serving(url) as server:
        setlist = get(f"{server.url}/setlist/set-x").text
        found = get(f"{server.url}/api/search?q=" + urllib.parse.quote("alert")).json()
        track = get(f"{server.url}/track/{found['results'][0]['track']['id']}").text
    for page in (setlist, track):
        assert "<script>alert" not in page and "</script><b>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'href="javascript:' not in setlist
    graph = track.split('id="graph-data" type="application/json">')[1].split("</script>")[0]
    assert json.loads(graph)["nodes"][0]["label"].startswith("<script>alert(1)")


def test_top_lists_default_to_the_last_year_of_sets(make_database) -> None:
    """Over every set a big catalogue's top lists outlast the statement timeout (503): by default
    they read the sets of the last 365 days, a range the page shows and the user can change."""
    today = date.today()
    url = make_database()
    store(
        url,
        page_items("old", ["Old Artist - Old Anthem"], ("DJ Past",), str(today - timedelta(400))),
        page_items("new", ["New Artist - New Tune"], ("DJ Now",), str(today - timedelta(30))),
    )
    year_ago = str(today - timedelta(365))
    with serving(url) as server:
        default = get(f"{server.url}/api/top").json()
        assert [t["track"]["title"] for t in default["tracks"]] == ["New Tune"]
        assert (default["since"], default["until"]) == (year_ago, None)
        every = get(f"{server.url}/api/top?since={today - timedelta(3650)}").json()
        assert {t["track"]["title"] for t in every["tracks"]} == {"New Tune", "Old Anthem"}
        page = get(f"{server.url}/top").text
        assert f'name="since" value="{year_ago}"' in page
        assert "New Tune" in page and "Old Anthem" not in page
        assert "Old Anthem" in get(f"{server.url}/top?until={today}").text
