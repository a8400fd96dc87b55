"""A live MPEG-TS stream served over HTTP on loopback, paced at its real rate, that can drop
connections on purpose: what a flaky IP camera looks like to FFmpeg."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PACKET = 188 * 64


def to_transport_stream(source: Path, target: Path, seconds: float) -> float:
    """Copy the first ``seconds`` of ``source``'s video into MPEG-TS; returns the duration."""
    import av

    end = 0.0
    with av.open(str(source)) as src, av.open(str(target), "w", format="mpegts") as dst:
        video = src.streams.video[0]
        out = dst.add_stream_from_template(video)
        for packet in src.demux(video):
            if packet.dts is None:
                continue
            t = float(packet.pts * packet.time_base)
            if t >= seconds:
                break
            end = max(end, t)
            packet.stream = out
            dst.mux(packet)
    return end


class LiveServer:
    """Serves ``data`` as a live stream (no Content-Length), ``duration`` seconds long.

    ``drop_after`` (fractions, one per connection) cuts those connections short; later
    connections get the whole stream, up to ``serve`` connections in all, after which the
    camera is "gone" (503). ``connections`` counts requests.
    """

    def __init__(
        self, data: bytes, duration: float, drop_after: tuple[float, ...] = (), serve: int = 99
    ) -> None:
        self.data, self.duration, self.drop_after, self.serve = data, duration, drop_after, serve
        self.connections = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                n = server.connections
                server.connections += 1
                if n >= server.serve:
                    self.send_error(503)
                    return
                limit = len(server.data)
                if n < len(server.drop_after):
                    limit = int(limit * server.drop_after[n])
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.end_headers()
                rate = len(server.data) / server.duration
                started = time.monotonic()
                try:
                    for offset in range(0, limit, PACKET):
                        delay = started + offset / rate - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                        self.wfile.write(server.data[offset : min(offset + PACKET, limit)])
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/live.ts"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
