"""A TCP proxy in front of a Redis that loses replies: Redis did the command, the client never
hears.

That is what a Redis killed between writing its append-only file and sending the reply, a
network cut, or a reply slower than the client's socket timeout does to a worker. While
``losing`` is set, the first time (since it was set) the proxy sees a command, its exact bytes
(of every ``every``-th new command only, when given), it forwards it, waits for Redis's reply
and drops the client's connection instead of passing the reply on; the same bytes sent again
(the client's retry) go through. ``lost`` counts the replies dropped. A connection's set-up and
checks (``CLIENT``, ``HELLO``, ``PING``, ``AUTH``, ``SELECT``) always get their replies: losing
them is a connection that fails before any command is done.
"""

from __future__ import annotations

import select
import socket
import threading
from types import TracebackType

SET_UP = frozenset({b"CLIENT", b"HELLO", b"PING", b"AUTH", b"SELECT"})


def command_name(command: bytes) -> bytes:
    """The name of the first command in RESP bytes (``*2\\r\\n$4\\r\\nPING…`` is ``PING``)."""
    parts = command.split(b"\r\n", 3)
    return parts[2].upper() if len(parts) > 2 else b""


class LosingProxy:
    def __init__(self, host: str, port: int, every: int = 1) -> None:
        self.target = (host, port)
        self.every = every
        self._losing = False
        self.lost = 0
        self._new = 0  # new commands seen while losing
        self._seen: set[bytes] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name="redis-proxy", daemon=True).start()

    @property
    def losing(self) -> bool:
        return self._losing

    @losing.setter
    def losing(self, losing: bool) -> None:
        with self._lock:
            self._losing = losing
            self._seen.clear()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _loses(self, command: bytes) -> bool:
        with self._lock:
            if not self._losing or command in self._seen or command_name(command) in SET_UP:
                return False
            self._seen.add(command)
            self._new += 1
            if self._new % self.every:
                return False
            self.lost += 1
            return True

    def _serve(self, client: socket.socket) -> None:
        with client, socket.create_connection(self.target) as server:
            while not self._closed.is_set():
                ready, _, _ = select.select([client, server], [], [], 0.2)
                if client in ready:
                    # redis-py writes one command (or one pipeline) in one send: one chunk.
                    command = client.recv(1 << 20)
                    if not command:
                        return
                    server.sendall(command)
                    if self._loses(command):
                        server.settimeout(5)
                        server.recv(1 << 20)  # Redis did it and answered: the answer is lost
                        return
                if server in ready:
                    reply = server.recv(1 << 20)
                    if not reply:
                        return
                    client.sendall(reply)

    def close(self) -> None:
        self._closed.set()
        self._listener.close()

    def __enter__(self) -> LosingProxy:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
