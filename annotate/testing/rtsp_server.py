"""A real RTSP server for end-to-end tests of streams: GStreamer's (``gst-rtsp-server``),
serving an H.264 MP4 file at ``rtsp://127.0.0.1:PORT/NAME`` for each NAME given, or, for a
NAME starting with ``live``, a camera-like stream without end (a synthetic moving ball).

It runs under the system's Python, which has GStreamer's bindings (Debian:
``python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-{good,bad,ugly}``), not the
project's virtual environment; :func:`start` starts it so and waits until it serves.

    /usr/bin/python3 annotate/testing/rtsp_server.py FILE PORT NAME [NAME ...]

(run as a file, so that the package, whose dependencies that Python lacks, is not imported).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

#: The Python that has GStreamer's bindings (``gi``), where it is installed.
SYSTEM_PYTHON = "/usr/bin/python3"


def available() -> str:
    """Why no server can start here (empty: one can)."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"no {SYSTEM_PYTHON}"
    done = subprocess.run([SYSTEM_PYTHON, "-c", PROBE], capture_output=True, text=True)
    if done.returncode:
        return "GStreamer's RTSP server or x264enc is not installed (.ci/run installs them)"
    return ""


#: Imports the server and finds the elements its streams use, or fails.
PROBE = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
    "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
    "assert all(Gst.ElementFactory.find(e) for e in ('x264enc', 'qtdemux', 'rtph264pay'))"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start(
    clip: Path, names: list[str], port: int | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """The server process and its port, once it accepts connections."""
    port = port or free_port()
    proc = subprocess.Popen(
        [SYSTEM_PYTHON, str(Path(__file__).resolve()), str(clip), str(port), *names],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"the RTSP server exited: {err[-500:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the RTSP server did not start in 15 s")


def serve(clip: str, port: int, names: list[str]) -> None:  # pragma: no cover - system Python
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    mounts = server.get_mount_points()
    for name in names:
        factory = GstRtspServer.RTSPMediaFactory()
        if name.startswith("live"):  # a camera's stream: no end, no duration
            factory.set_launch(
                "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,"
                "framerate=30/1 ! x264enc tune=zerolatency speed-preset=ultrafast "
                "key-int-max=30 ! rtph264pay name=pay0 pt=96 )"
            )
        else:  # the file's own H.264, sent at its real rate (the server syncs to the clock)
            factory.set_launch(
                f'( filesrc location="{clip}" ! qtdemux ! h264parse config-interval=-1 '
                "! rtph264pay name=pay0 pt=96 )"
            )
        mounts.add_factory(f"/{name}", factory)
    server.attach(None)
    GLib.MainLoop().run()


if __name__ == "__main__":  # pragma: no cover - system Python
    serve(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
