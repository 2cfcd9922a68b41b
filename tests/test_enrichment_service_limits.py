"""The enrichment service under hostile clients, over raw sockets (issue 11, item 7).

Each request is written by hand, as an attacker would send it, so the tests see exactly what the
server answers (or that it answers at all) without an HTTP client smoothing anything over.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from contextlib import suppress
from typing import Any

import pytest

from tests.fakes.fixtures import Fakes
from tests.test_enrichment_service import running_service, store, track_row


def exchange(url: str, raw: bytes, *, timeout: float = 10.0) -> tuple[int, dict[str, str], Any]:
    """Send ``raw`` on a fresh connection; the status, headers and body (decoded if JSON).

    Reads the answer's head, then its ``Content-Length`` of body (or up to the close): the
    connection may be kept alive after it.
    """
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as connection:
        connection.sendall(raw)
        received = b""
        while b"\r\n\r\n" not in received and (chunk := connection.recv(65536)):
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in header_lines)
        }
        length = int(headers.get("content-length", 2**40))
        while len(body) < length and (chunk := connection.recv(65536)):
            body += chunk
    is_json = headers.get("content-type") == "application/json"
    return int(status_line.split()[1]), headers, json.loads(body) if is_json else body.decode()


def post(path: str, body: bytes, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def test_a_chunked_body_is_refused_with_411_and_runs_nothing(fakes: Fakes, db_url: str, db) -> None:
    store(db_url, {"artist": "Deadmau5", "title": "Strobe"})
    chunked = b'19\r\n{"max_tracks": 10, "x":1}\r\n0\r\n\r\n'
    with running_service(db_url, fakes.config()) as service:
        status, headers, answer = exchange(
            service.url,
            post(
                "/enrich/batch",
                chunked,
                "Content-Type: text/plain",
                "Transfer-Encoding: chunked",
            ),
        )
    assert status == 411 and headers["content-type"] == "application/json"
    assert "chunked" in answer["error"]
    assert fakes.all_api_requests() == 0
    assert track_row(db, "Strobe")["enrichment_status"] == "pending", "no batch ran"


def test_a_huge_chunked_body_is_refused_before_it_is_read(fakes: Fakes, db_url: str) -> None:
    """The answer comes at once, and the server stops the client long before its 50 MB."""
    piece = b"10000\r\n" + b"[" * 0x10000 + b"\r\n"
    sent = 0
    answer = b""
    with running_service(db_url, fakes.config()) as service:
        host, port = service.server_address[:2]
        with socket.create_connection((host, port), timeout=10) as connection:
            started = time.monotonic()
            connection.sendall(
                post("/enrich/batch", b"", "Content-Type: application/json")[:-2]
                + b"Transfer-Encoding: chunked\r\n\r\n"
            )
            with suppress(OSError):  # the server closes while we are still sending
                while sent < 50 * 2**20:
                    connection.sendall(piece)
                    sent += len(piece)
            with suppress(OSError):
                while part := connection.recv(65536):
                    answer += part
            elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 411"), answer[:100]
    assert sent < 50 * 2**20 and elapsed < 5
    assert fakes.all_api_requests() == 0


@pytest.mark.parametrize(
    "nested",
    [b"[" * 5000 + b"]" * 5000, b'{"a":' * 2000 + b"1" + b"}" * 2000],
    ids=["arrays", "objects"],
)
def test_deeply_nested_json_gets_a_400(fakes: Fakes, db_url: str, nested: bytes) -> None:
    with running_service(db_url, fakes.config()) as service:
        status, _, answer = exchange(
            service.url,
            post(
                "/enrich/batch",
                nested,
                "Content-Type: application/json",
                f"Content-Length: {len(nested)}",
            ),
        )
    # pydantic's JSON parser stops at its recursion limit: the body is refused, not parsed deep.
    assert status == 400 and "recursion limit exceeded" in answer["error"]
    assert fakes.all_api_requests() == 0


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("PUT", "/enrich/batch", 405, "POST"),
        ("DELETE", "/enrich/batch", 405, "POST"),
        ("PATCH", "/enrich/batch", 405, "POST"),
        ("DELETE", "/health", 405, "GET"),
        ("PUT", "/metrics", 405, "GET"),
        ("PUT", "/nowhere", 404, None),
    ],
)
def test_other_methods_get_json_405_with_allow(
    fakes: Fakes, db_url: str, method: str, path: str, status: int, allow: str | None
) -> None:
    raw = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n".encode()
    with running_service(db_url, fakes.config()) as service:
        got, headers, answer = exchange(service.url, raw)
    assert got == status and headers["content-type"] == "application/json"
    assert headers.get("allow") == allow
    assert answer["error"]


def test_an_unknown_method_gets_a_json_answer(fakes: Fakes, db_url: str) -> None:
    with running_service(db_url, fakes.config()) as service:
        status, headers, answer = exchange(service.url, b"BREW /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 501 and headers["content-type"] == "application/json"
    assert "BREW" in answer["error"]


@pytest.mark.parametrize(
    "lengths",
    [["-5"], ["abc"], ["+5"], ["5", "7"], [" "]],
    ids=["negative", "text", "signed", "twice", "blank"],
)
def test_a_bad_content_length_is_a_400_saying_so(
    fakes: Fakes, db_url: str, lengths: list[str]
) -> None:
    headers = ["Content-Type: application/json", *(f"Content-Length: {n}" for n in lengths)]
    with running_service(db_url, fakes.config()) as service:
        status, _, answer = exchange(service.url, post("/enrich/batch", b"{}", *headers))
    assert status == 400
    # h11 refuses the request before the app sees it; the JSON 400 names the header.
    assert answer["error"].startswith("invalid HTTP request: ")
    assert "Content-Length" in answer["error"]
    assert fakes.all_api_requests() == 0


def test_a_client_sending_a_byte_at_a_time_is_cut_off(fakes: Fakes, db_url: str) -> None:
    config = fakes.config(service_request_timeout=1.0)
    with running_service(db_url, config) as service:
        host, port = service.server_address[:2]
        with socket.create_connection((host, port), timeout=10) as connection:
            started = time.monotonic()
            connection.sendall(b"POST /enrich/batch HTTP/1.1\r\nHost: x\r\n")
            closed_after = None
            while time.monotonic() - started < 8:
                readable, _, _ = select.select([connection], [], [], 0.2)
                if readable:
                    with_data = connection.recv(65536)
                    if not with_data:
                        closed_after = time.monotonic() - started
                        break
                    continue
                try:
                    connection.sendall(b"X")
                except OSError:
                    closed_after = time.monotonic() - started
                    break
    assert closed_after is not None, "the trickling client was never cut off"
    assert closed_after < 4


def test_a_slow_body_gets_408(fakes: Fakes, db_url: str) -> None:
    config = fakes.config(service_request_timeout=1.0)
    with running_service(db_url, config) as service:
        host, port = service.server_address[:2]
        with socket.create_connection((host, port), timeout=10) as connection:
            connection.sendall(
                post("/enrich/batch", b"{", "Content-Type: application/json", "Content-Length: 20")
            )
            answer = connection.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert fakes.all_api_requests() == 0


def test_connections_beyond_the_cap_get_503_at_once_and_threads_stay_bounded(
    fakes: Fakes, db_url: str
) -> None:
    config = fakes.config(service_max_connections=3, service_request_timeout=5.0)
    threads_before = threading.active_count()
    with running_service(db_url, config) as service:
        host, port = service.server_address[:2]
        idle = [socket.create_connection((host, port), timeout=10) for _ in range(50)]
        try:
            time.sleep(0.5)
            # One thread runs the server's event loop; connections hold no thread of their own.
            assert threading.active_count() - threads_before <= 1 + 3
            started = time.monotonic()
            status, headers, answer = exchange(
                service.url, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            assert time.monotonic() - started < 1.0
            assert status == 503, (status, headers, answer)
            # uvicorn's own refusal (limit_concurrency), and the connection is closed.
            assert headers["connection"] == "close" and answer == "Service Unavailable"
        finally:
            for connection in idle:
                connection.close()
        # Closed (or timed out) clients free their slots.
        deadline = time.monotonic() + 5
        while True:
            status, _, answer = exchange(service.url, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert status == 200 and answer["database"] == "ok"


def test_a_query_string_does_not_change_the_route(fakes: Fakes, db_url: str) -> None:
    with running_service(db_url, fakes.config()) as service:
        status, _, answer = exchange(
            service.url, b"GET /health?verbose=1 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        assert status == 200 and answer["database"] == "ok"
        status, headers, _ = exchange(
            service.url, b"DELETE /health?x=1 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        assert (status, headers["allow"]) == (405, "GET")


def test_a_kept_alive_connection_trickling_its_next_request_is_cut_off(
    fakes: Fakes, db_url: str
) -> None:
    """The head deadline starts again after each answer: keep-alive is no way around it."""
    config = fakes.config(service_request_timeout=1.0)
    with running_service(db_url, config) as service:
        host, port = service.server_address[:2]
        with socket.create_connection((host, port), timeout=10) as connection:
            connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            first = connection.recv(65536)
            assert first.startswith(b"HTTP/1.1 200"), first[:100]
            started = time.monotonic()
            connection.sendall(b"GET /health HTTP/1.1\r\n")
            closed = False
            while time.monotonic() - started < 8 and not closed:
                try:
                    connection.sendall(b"X")
                    readable, _, _ = select.select([connection], [], [], 0.3)
                    closed = bool(readable) and connection.recv(65536) == b""
                except OSError:
                    closed = True
            elapsed = time.monotonic() - started
    assert closed, "the trickling client was never cut off"
    assert elapsed < 4
