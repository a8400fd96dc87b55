"""A live preview in the browser, for machines without a screen (a Raspberry Pi on a shelf).

One small HTTP server in the same process (the standard library's; no framework for one page):

- ``/``           the page: the live picture, live stats and a stop button;
- ``/frame.jpg``  the newest annotated frame (the page fetches it again as soon as one has
  arrived, so a slow viewer simply sees fewer frames);
- ``/stream.mjpg`` the same as an MJPEG stream, for players such as VLC;
- ``/stats``      FPS, inference time, provider, dropped frames, detections per class,
                   identities so far with ``--track``, line and zone counts (JSON);
- ``/stop``       (POST) ends the run cleanly, as ``q`` does in the window.

With several sources (``annotate run A B --serve``) ``/`` is a grid of them, and each
source's own page and addresses sit under ``/source/NAME/``.

It answers only its own page: a request whose ``Host`` is not this server (an IP address,
``localhost``, this machine's name, or one allowed with ``extra_hosts``) gets 403, so a web
page on another domain that re-resolves to this machine (DNS rebinding) cannot watch; a stop
needs the per-run token the page carries and an ``Origin``, if any, of this server, so another
site's form or script cannot end the run. At most ``MAX_VIEWERS`` connections are served at
once (503 beyond), and a connection that sends nothing for ``IDLE_S`` seconds is closed.

The pipeline only hands over a reference to each finished frame; JPEG encoding happens on the
preview's own thread and only while someone watches, and each viewer is served on its own
thread, so no viewer can slow the run.
"""

from __future__ import annotations

import contextlib
import html
import ipaddress
import json
import logging
import secrets
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Any
from urllib.parse import unquote

import numpy as np
import numpy.typing as npt

from annotate.errors import StopRequested, UsageError
from annotate.sinks import SinkBase
from annotate.stats import LiveStats
from annotate.types import Detections, Frame

log = logging.getLogger("annotate")

DEFAULT_HOST = "127.0.0.1"
JPEG_QUALITY = 80
VIEWER_IDLE_S = 2.0  # encode only while a viewer asked for a frame this recently
MAX_VIEWERS = 32  # connections served at once; more get 503
IDLE_S = 10.0  # a connection that sends (or takes) nothing this long is closed


def parse_address(text: str) -> tuple[str, int]:
    """``8000`` → (127.0.0.1, 8000); ``0.0.0.0:8080``; ``[::1]:8000``; ``host:port``."""
    text = text.strip()
    host, port = DEFAULT_HOST, text
    if text.startswith("["):
        host, _, port = text[1:].partition("]")
        port = port.lstrip(":")
    elif text.count(":") == 1:
        host, port = text.split(":")
        host = host or DEFAULT_HOST
    try:
        number = int(port)
    except ValueError:
        raise UsageError(f"--serve takes [HOST:]PORT, got '{text}'") from None
    if not 0 <= number <= 65535:
        raise UsageError(f"--serve port must be 0-65535, got {number}")
    return host, number


def split_host(value: str) -> str:
    """``Host`` header → the host alone: ``[::1]:8000`` → ``::1``, ``a.b:80`` → ``a.b``."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    return value.rpartition(":")[0] if value.count(":") == 1 else value


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class _Channel:
    """One source's pictures: the newest annotated frame, and its JPEG, encoded on this
    channel's own thread only while someone watches."""

    def __init__(self, name: str, stats: LiveStats) -> None:
        self.name, self.stats = name, stats
        self._cond = threading.Condition()
        self._image: npt.NDArray[np.uint8] | None = None
        self._image_id = 0
        self._jpeg: bytes | None = None
        self._jpeg_id = 0
        self._wanted_at = 0.0
        self.closed = False
        self._thread = threading.Thread(
            target=self._encode_loop, name=f"preview-jpeg {name}".strip(), daemon=True
        )
        self._thread.start()

    def put(self, image: npt.NDArray[np.uint8]) -> None:
        with self._cond:
            self._image = image
            self._image_id += 1
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def _encode_loop(self) -> None:
        import cv2

        encoded = 0

        def ready(done: int) -> bool:
            watched = time.monotonic() - self._wanted_at < VIEWER_IDLE_S
            return self.closed or (self._image_id > done and watched)

        while not self.closed:
            with self._cond:
                self._cond.wait_for(lambda: ready(encoded), timeout=0.5)  # noqa: B023
                if self.closed or self._image is None or self._image_id == encoded:
                    continue
                image, encoded = self._image, self._image_id
            ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if ok:
                with self._cond:
                    self._jpeg, self._jpeg_id = data.tobytes(), encoded
                    self._cond.notify_all()

    def next_jpeg(self, after: int, timeout: float = 5.0) -> tuple[int, bytes] | None:
        """The newest JPEG newer than ``after`` (waiting for one), or ``None`` on timeout."""
        with self._cond:
            self._wanted_at = time.monotonic()
            self._cond.notify_all()
            ready = self._cond.wait_for(
                lambda: self.closed or (self._jpeg is not None and self._jpeg_id > after),
                timeout=timeout,
            )
            if not ready or self._jpeg is None or self._jpeg_id <= after:
                return None
            return self._jpeg_id, self._jpeg


class WebPreview(SinkBase):
    """Serves the annotated stream; ``address`` is where it really listens (port 0 picks one).

    With ``stats`` it serves one source, written through :meth:`write`. Without, it serves
    a grid of several (a multi-source run): each source's pipeline writes through the sink
    :meth:`add_source` gives it; ``/`` is then the grid, ``/source/NAME/`` each source's own
    page (its picture, ``stats``, ``frame.jpg``, ``stream.mjpg``), ``/stats`` every source's
    stats by name, and a stop from any page stops them all.
    """

    def __init__(
        self,
        host: str,
        port: int,
        stats: LiveStats | None,
        title: str = "annotate",
        extra_hosts: tuple[str, ...] = (),
    ) -> None:
        self.title = title
        self.token = secrets.token_urlsafe(16)  # in the page; a stop must carry it
        # Names a browser may use for this server. IP addresses are always fine: rebinding
        # needs a domain name that the attacker controls.
        self.hosts = {"localhost", *(h.lower() for h in extra_hosts)}
        if not is_loopback(host):
            self.hosts |= {socket.gethostname().lower(), socket.getfqdn().lower()}
        self._viewers = threading.BoundedSemaphore(MAX_VIEWERS)
        self.grid = stats is None
        self._channels: dict[str, _Channel] = {}
        if stats is not None:
            self._channels[""] = _Channel("", stats)
        self._stop_asked = False
        self._closed = False
        try:
            self.server = _server_for(host, self)((host, port), self._handler())
        except OSError as e:
            for channel in self._channels.values():
                channel.close()
            raise UsageError(f"cannot serve the preview on {host}:{port}: {e.strerror}") from None
        self.server.daemon_threads = True
        bound_host, bound_port = (str(part) for part in self.server.server_address[:2])
        shown = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
        self.url = f"http://{shown}:{bound_port}/"
        self.address = (str(bound_host), int(bound_port))
        if not is_loopback(host):
            log.warning(
                "the preview on %s is open to your network: anyone who can reach "
                "this machine can watch; use --serve PORT to keep it on 127.0.0.1",
                self.url,
            )
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="preview-http", daemon=True
        )
        self._thread.start()
        log.info("Preview at %s", self.url)

    # Pipeline side

    def add_source(self, name: str, stats: LiveStats) -> SourceView:
        """The sink one source of a grid writes to."""
        channel = self._channels[name] = _Channel(name, stats)
        return SourceView(self, channel)

    def write(self, frame: Frame, annotated: npt.NDArray[np.uint8], detections: Detections) -> None:
        if self._stop_asked:
            raise StopRequested("stopped from the web page")
        self._channels[""].put(annotated)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for channel in self._channels.values():
            channel.close()
        self.server.shutdown()
        self.server.server_close()

    # Preview side

    def channel(self, name: str) -> _Channel | None:
        return self._channels.get(name)

    def snapshot(self) -> dict[str, Any]:
        if not self.grid:
            return self._channels[""].stats.snapshot()
        return {"sources": {n: c.stats.snapshot() for n, c in list(self._channels.items())}}

    def stop(self) -> None:
        self._stop_asked = True

    def allowed_host(self, value: str | None) -> bool:
        host = split_host(value or "")
        return bool(host) and (is_ip(host) or host in self.hosts)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        preview = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "annotate"
            timeout = IDLE_S  # idle and half-sent requests (slowloris) are dropped

            def log_message(self, *args: Any) -> None:  # no per-request lines on stderr
                pass

            def _refused(self) -> bool:
                """403 for a Host that is not this server (DNS rebinding)."""
                if preview.allowed_host(self.headers.get("Host")):
                    return False
                log.debug("preview: refused Host %r", self.headers.get("Host"))
                self._send(b"unknown host", "text/plain", 403)
                return True

            def _send(
                self, body: bytes, kind: str, status: int = 200, extra: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                for name, value in (extra or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def _route(self) -> tuple[_Channel | None, str]:
                """(the source a path is about, the rest): ``/source/NAME/REST`` in a grid,
                else the one source's; (``None``, path) for the grid's own pages."""
                path = self.path.split("?", 1)[0]
                if path.startswith("/source/"):
                    name, _, rest = path[len("/source/") :].partition("/")
                    channel = preview.channel(unquote(name)) if preview.grid else None
                    return channel, "/" + rest if channel is not None else "/missing"
                return (None if preview.grid else preview.channel("")), path

            def do_GET(self) -> None:
                try:
                    if self._refused():
                        return
                    channel, path = self._route()
                    if path == "/" and channel is None:
                        body = grid_page(preview.title, preview.token).encode()
                        self._send(body, "text/html; charset=utf-8")
                    elif path == "/stats" and channel is None:
                        self._send(json.dumps(preview.snapshot()).encode(), "application/json")
                    elif channel is None:
                        self._send(b"not found", "text/plain", 404)
                    elif path == "/":
                        title = preview.title + (f" - {channel.name}" if channel.name else "")
                        body = page(title, preview.token).encode()
                        self._send(body, "text/html; charset=utf-8")
                    elif path == "/frame.jpg":
                        text = (self.headers.get("X-After-Frame") or "0").strip()
                        if not (text.isascii() and text.isdigit() and len(text) <= 18):
                            log.debug("preview: bad X-After-Frame %r", text[:40])
                            self._send(b"X-After-Frame must be a frame number", "text/plain", 400)
                            return
                        got = channel.next_jpeg(int(text))
                        if got is None:
                            self._send(b"no new frame", "text/plain", 503)
                        else:
                            self._send(got[1], "image/jpeg", extra={"X-Frame": str(got[0])})
                    elif path == "/stream.mjpg":
                        self._stream(channel)
                    elif path == "/stats":
                        body = json.dumps(channel.stats.snapshot()).encode()
                        self._send(body, "application/json")
                    else:
                        self._send(b"not found", "text/plain", 404)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_POST(self) -> None:
                try:
                    if self._refused():
                        return
                    channel, path = self._route()
                    if path != "/stop" or (channel is None and not preview.grid):
                        self._send(b"not found", "text/plain", 404)
                        return
                    origin = self.headers.get("Origin")
                    same_origin = origin is None or (
                        origin.lower().partition("://")[2]
                        == (self.headers.get("Host") or "").lower()
                    )
                    if not same_origin or self.headers.get("X-Annotate-Token") != preview.token:
                        log.debug("preview: refused a stop from %r", origin)
                        self._send(b"stop refused: not from this page", "text/plain", 403)
                        return
                    preview.stop()
                    self._send(b'{"stopping": true}', "application/json")
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _stream(self, channel: _Channel) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                last = 0
                while not preview._closed and not channel.closed:
                    got = channel.next_jpeg(last, timeout=1.0)
                    if got is None:
                        continue
                    last, data = got
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n")
                    self.wfile.write(f"Content-Length: {len(data)}\r\n\r\n".encode())
                    self.wfile.write(data + b"\r\n")

        return Handler


def _server_for(host: str, preview: WebPreview) -> type[ThreadingHTTPServer]:
    """A threading server of the address family ``host`` needs, serving at most
    ``MAX_VIEWERS`` connections at once."""

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        daemon_threads = True
        request_queue_size = 64  # a burst of connections waits to be answered, not refused

        def process_request(self, request: Any, client_address: Any) -> None:
            if not preview._viewers.acquire(blocking=False):
                with contextlib.suppress(OSError):
                    request.settimeout(0.05)
                    request.sendall(
                        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 17\r\n"
                        b"Connection: close\r\n\r\ntoo many viewers\n"
                    )
                    # Read what the client already sent: closing with it unread would reset
                    # the connection and lose the 503 on its way.
                    request.recv(65536)
                self.shutdown_request(request)
                return
            super().process_request(request, client_address)

        def process_request_thread(self, request: Any, client_address: Any) -> None:
            try:
                super().process_request_thread(request, client_address)
            finally:
                preview._viewers.release()

        def handle_error(self, request: Any, client_address: Any) -> None:
            log.debug("preview: a request from %s failed", client_address)

    return Server


def page(title: str, token: str = "", name: str = "preview.html") -> str:
    """The preview page. Names from the source reach it escaped, or as JSON via textContent."""
    text = files("annotate.sinks").joinpath(name).read_text(encoding="utf-8")
    return text.replace("{{title}}", html.escape(title)).replace("{{token}}", html.escape(token))


def grid_page(title: str, token: str = "") -> str:
    """The page of every source of a multi-source run, a tile each."""
    return page(title, token, "grid.html")


class SourceView(SinkBase):
    """What one source of a grid writes to: its channel of the shared preview."""

    def __init__(self, preview: WebPreview, channel: _Channel) -> None:
        self.preview, self.channel = preview, channel

    def write(self, frame: Frame, annotated: npt.NDArray[np.uint8], detections: Detections) -> None:
        if self.preview._stop_asked:
            raise StopRequested("stopped from the web page")
        self.channel.put(annotated)

    def close(self) -> None:
        pass  # the preview outlives its sources; whoever made it closes it
