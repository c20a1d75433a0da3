"""A TCP proxy in front of the real OpenSearch node that tests can tell to misbehave.

Why: a real node never drops a connection, stalls an answer or sits behind a partition on
cue; a proxy on 127.0.0.1 can, while the node behind it stays the real thing. Modes:

* ``pass``: forward both ways;
* ``refuse``: new connections are reset at once and open ones are cut (a partition that
  fails fast: connection refused/reset);
* ``blackhole``: connections are accepted and read, nothing is forwarded or answered (a
  partition where packets vanish: the client times out);
* ``stall_next_response()``: one-shot: the next server answer is swallowed and its
  connection left hanging, so the client times out although the node did the work.

``cut_after_bytes`` switches to ``refuse`` once that many request bytes went upstream.
With ``tls`` (an ``ssl.SSLContext``) the proxy terminates TLS for clients and talks plain
HTTP to the node. Every loop is bounded by socket timeouts; threads are daemons.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_POLL_S = 0.1


class TcpProxy:
    """State shared by the per-connection threads (guarded by ``lock``)."""

    def __init__(self, upstream: tuple[str, int], tls: ssl.SSLContext | None = None,
                 capture_limit: int = 1 << 20) -> None:
        self.upstream = upstream
        self.tls = tls
        self.mode = "pass"
        self.lock = threading.Lock()
        self.cut_after_bytes: int | None = None
        self.bytes_up = 0
        self.captured = bytearray()  # the first ``capture_limit`` request bytes
        self.capture_limit = capture_limit
        self.stalled = 0  # answers swallowed by stall_next_response
        self._stall_armed = False
        self._open: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(_POLL_S)
        self.port = self._listener.getsockname()[1]
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def set_mode(self, mode: str) -> None:
        assert mode in ("pass", "refuse", "blackhole")
        with self.lock:
            self.mode = mode
            victims = list(self._open) if mode != "pass" else []
        for s in victims:  # a partition also hits connections that are already open
            _reset(s)

    def stall_next_response(self) -> None:
        with self.lock:
            self._stall_armed = True

    # ------------------------------------------------------------------ internals
    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with self.lock:
            mode = self.mode
        if mode == "refuse":
            _reset(client)
            return
        if self.tls is not None:
            try:
                client.settimeout(5)
                client = self.tls.wrap_socket(client, server_side=True)
            except (OSError, ssl.SSLError):
                client.close()  # the client refused our certificate: what the test wants
                return
        if mode == "blackhole":
            self._swallow(client)
            return
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            _reset(client)
            return
        with self.lock:
            self._open.update((client, server))
        pair = {"stalled": False}
        up = threading.Thread(target=self._pump, args=(client, server, True, pair), daemon=True)
        up.start()
        self._pump(server, client, False, pair)
        up.join(timeout=30)
        with self.lock:
            self._open.difference_update((client, server))

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool, pair: dict[str, bool]) -> None:
        src.settimeout(_POLL_S)
        while not self._closed.is_set():
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            with self.lock:
                if self.mode != "pass":
                    break
                if upstream:
                    self.bytes_up += len(data)
                    room = self.capture_limit - len(self.captured)
                    if room > 0:
                        self.captured += data[:room]
                    if self.cut_after_bytes is not None and self.bytes_up >= self.cut_after_bytes:
                        self.cut_after_bytes = None
                        self.mode = "refuse"
                elif self._stall_armed and not pair["stalled"]:
                    self._stall_armed = False
                    pair["stalled"] = True
                    self.stalled += 1
                if pair["stalled"] and not upstream:
                    continue  # the answer never reaches the client
            try:
                dst.sendall(data)
            except OSError:
                break
        _reset(src)
        _reset(dst)

    def _swallow(self, client: socket.socket) -> None:
        with self.lock:
            self._open.add(client)
        client.settimeout(_POLL_S)
        while not self._closed.is_set():
            try:
                if not client.recv(65536):
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        with self.lock:
            self._open.discard(client)
        client.close()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self.lock:
            victims = list(self._open)
        for s in victims:
            _reset(s)
        self._thread.join(timeout=5)


def _reset(s: socket.socket) -> None:
    """Close with RST (SO_LINGER 0): the peer sees 'connection reset', not a clean end."""
    with contextlib.suppress(OSError):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with contextlib.suppress(OSError):
        s.close()


@contextmanager
def tcp_proxy(upstream_url: str, tls: ssl.SSLContext | None = None) -> Iterator[TcpProxy]:
    """A proxy on 127.0.0.1 (free port) to ``upstream_url``'s host:port for the block."""
    from urllib.parse import urlsplit

    parts = urlsplit(upstream_url)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 80), tls=tls)
    proxy._thread.start()
    try:
        yield proxy
    finally:
        proxy.close()
