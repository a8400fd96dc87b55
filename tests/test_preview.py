"""Live previews: the web page (plain HTTP clients and a real headless Chromium) and the window
on machines without a display."""

from __future__ import annotations

import json
import logging
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from annotate.errors import UsageError
from annotate.pipeline import RunOptions, run
from annotate.providers import CPU, Resolution
from annotate.sinks.web import parse_address
from annotate.sinks.window import draw_overlay
from tests.helpers import MODEL, VIDEOS

PERSON = VIDEOS / "one-by-one-person-detection.mp4"  # 1394 frames: long enough to watch


@pytest.mark.parametrize(
    ("text", "address"),
    [("8000", ("127.0.0.1", 8000)), ("0.0.0.0:8080", ("0.0.0.0", 8080)),
     (":9000", ("127.0.0.1", 9000)), ("[::1]:8000", ("::1", 8000)),
     ("localhost:0", ("localhost", 0))],
)  # fmt: skip
def test_parse_address(text, address):
    assert parse_address(text) == address


@pytest.mark.parametrize("text", ["http", "1.2.3.4:x", "70000"])
def test_parse_address_errors(text):
    with pytest.raises(UsageError, match="--serve"):
        parse_address(text)


class Running:
    """``annotate run --serve`` on a background thread, with the preview's URL."""

    def __init__(self, caplog: pytest.LogCaptureFixture, host: str = "127.0.0.1", **kw) -> None:
        caplog.set_level(logging.INFO, logger="annotate")
        self.caplog = caplog
        options = RunOptions(
            source=str(kw.pop("source", PERSON)),
            model=MODEL,
            resolution=Resolution((CPU,), "test"),
            serve=(host, 0),
            fps_every=10**6,
            **kw,
        )
        self.summary = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(options,), daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            found = re.search(r"Preview at (http://\S+)", caplog.text)
            if found:
                self.url = found.group(1).replace("0.0.0.0", "127.0.0.1")
                return
            time.sleep(0.05)
        raise AssertionError(f"no preview URL in the log: {caplog.text}")

    def _run(self, options: RunOptions) -> None:
        try:
            self.summary = run(options)
        except BaseException as e:
            self.error = e

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path.lstrip("/"), timeout=10) as response:
            return response.read()

    def stop(self) -> None:
        """As the page's Stop button does: with the run's token from the page."""
        token = re.search(r'"X-Annotate-Token": "([^"]+)"', self.get("/").decode()).group(1)
        request = urllib.request.Request(
            self.url + "stop", method="POST", headers={"X-Annotate-Token": token}
        )
        urllib.request.urlopen(request, timeout=10).read()
        self.thread.join(timeout=20)
        assert not self.thread.is_alive() and self.error is None


def _mjpeg_frames(url: str, count: int, got: list[bytes]) -> None:
    """Read ``count`` JPEGs from the MJPEG stream into ``got``."""
    with urllib.request.urlopen(url + "stream.mjpg", timeout=10) as stream:
        while len(got) < count:
            line = stream.readline()
            if not line:  # the run ended and closed the stream
                return
            if line.lower().startswith(b"content-length:"):
                size = int(line.split(b":")[1])
                stream.readline()
                got.append(stream.read(size))


@pytest.mark.shared
def test_two_viewers_get_changing_frames(caplog):
    running = Running(caplog, source=VIDEOS / "bottle-detection.mp4", sequential=True)
    views: list[list[bytes]] = [[], []]
    readers = [threading.Thread(target=_mjpeg_frames, args=(running.url, 8, v)) for v in views]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(timeout=20)
    for view in views:
        assert len(view) == 8
        assert all(f.startswith(b"\xff\xd8") for f in view)  # JPEG
        assert len(set(view)) >= 6  # the picture changes
    stats = json.loads(running.get("/stats"))
    assert stats["provider"] == CPU and stats["running"] is True and stats["frames"] > 0
    assert stats["fps"] > 0 and stats["inference_ms"] > 0 and "bottle" in stats["classes"]
    running.stop()
    assert running.summary.stopped == "stopped from the web page"


@pytest.mark.shared
def test_a_stalled_viewer_does_not_stall_the_run(caplog):
    """A client that connects and never reads: the run still goes through every frame."""
    running = Running(caplog, source=VIDEOS / "bottle-detection.mp4")
    host, port = running.url.split("//")[1].rstrip("/").rsplit(":", 1)
    stalled = socket.create_connection((host, int(port)))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
    running.thread.join(timeout=120)
    stalled.close()
    assert not running.thread.is_alive() and running.error is None
    assert running.summary.frames == 1189


@pytest.mark.shared
def test_non_loopback_bind_warns(caplog):
    running = Running(caplog, host="0.0.0.0")
    assert "is open to your network" in caplog.text
    assert running.get("/").startswith(b"<!doctype html>")
    running.stop()


@pytest.mark.shared
def test_names_are_escaped_in_the_page(caplog, tmp_path):
    odd = tmp_path / "<script>x&y.mp4"
    odd.symlink_to(PERSON)
    running = Running(caplog, source=odd)
    page = running.get("/").decode()
    assert "&lt;script&gt;x&amp;y.mp4" in page and "<script>x" not in page
    running.stop()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
@pytest.mark.shared
def test_page_in_headless_chromium(caplog, tmp_path, monkeypatch):
    """A real browser loads the page: frames arrive and change, stats fill in, screenshot.
    The source is a (stand-in) camera, which runs until stopped however slow the browser is
    (a file could end first on a busy machine: it did once in CI, 2026-12-03)."""
    import annotate.sources.camera as camera
    from tests.helpers import FileCamera

    monkeypatch.setattr(camera, "open_capture", lambda _i: FileCamera(PERSON))
    running = Running(caplog, source="camera")
    flags = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=4000",
        "--timeout=20000",
    ]

    def chromium(*args: str) -> str:
        """Headless Chromium, once more if it hangs (it did, rarely, on a busy CI host, even
        with its own --timeout)."""
        for attempt in range(2):
            try:
                return subprocess.run(
                    [*flags, *args, running.url], capture_output=True, text=True, timeout=60
                ).stdout
            except subprocess.TimeoutExpired:
                if attempt:
                    raise
        return ""

    dom = chromium("--dump-dom")
    shown = int(re.search(r'id="shown" data-count="(\d+)"', dom).group(1))
    assert shown >= 5, dom[-2000:]  # each one a newer frame than the last
    assert re.search(r'id="provider">CPUExecutionProvider<', dom)
    assert re.search(r'id="fps">\d+\.\d<', dom)
    shot = tmp_path / "page.png"
    chromium(f"--screenshot={shot}", "--window-size=1100,600")
    running.stop()
    import cv2

    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (600, 1100)
    picture = image[20:400, 20:700]
    assert picture.std() > 20  # video, not an empty box


def test_window_overlay_is_drawn_on_a_copy():
    image = np.full((360, 640, 3), 200, np.uint8)
    shown = draw_overlay(image, ["30.0 FPS", "inference 9.1 ms", CPU, "dropped 0"])
    assert (image == 200).all()  # the output frame is untouched
    panel = shown[:60, :150]
    assert (panel < 100).mean() > 0.5  # dimmed
    assert (panel >= 250).any()  # white text (OpenCV 4.8's anti-aliasing peaks at 254)


@pytest.mark.shared
def test_show_on_a_headless_machine(cli, monkeypatch, tmp_path):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    r = cli("run", VIDEOS / "asl_walk.mkv", "--show", "--model", MODEL, "--max-frames", "5")
    assert r.code == 0
    assert "Not showing a window: no display (DISPLAY and WAYLAND_DISPLAY are unset)" in r.err


@pytest.mark.shared
def test_serve_port_in_use(cli):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = cli("run", VIDEOS / "asl_walk.mkv", "--serve", str(port), "--model", MODEL)
    assert r.code == 2
    assert (
        r.err.strip()
        .splitlines()[-1]
        .startswith(f"Error: cannot serve the preview on 127.0.0.1:{port}: Address already in use")
    )


@pytest.mark.shared
def test_camera_with_output_and_preview(caplog, monkeypatch, tmp_path):
    """A (stand-in) camera, recorded with -o and watched at the same time."""
    import annotate.sources.camera as camera
    from tests.helpers import FileCamera, decode_video

    monkeypatch.setattr(camera, "open_capture", lambda _i: FileCamera(VIDEOS / "car-detection.mp4"))
    out = tmp_path / "cam.mp4"
    running = Running(caplog, source="camera", output=out)
    got: list[bytes] = []
    _mjpeg_frames(running.url, 5, got)
    assert len(set(got)) == 5
    running.stop()
    assert running.summary.mode == "sequential"
    assert len(decode_video(out)[2]) == running.summary.frames > 5


def _raw(running: Running, request: bytes, timeout: float = 10) -> bytes:
    """Send ``request`` as is (any Host, any header) and return the whole response."""
    host, port = running.url.split("//")[1].rstrip("/").rsplit(":", 1)
    with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as s:
        s.sendall(request)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.shared
def test_only_this_server_s_host_names_are_answered(caplog):
    """DNS rebinding: a page on attacker.example that re-resolves to 127.0.0.1 sends its own
    name as Host; it gets 403, while IP addresses and localhost work."""
    running = Running(caplog, sequential=True)
    port = running.url.rstrip("/").rsplit(":", 1)[1]
    try:
        for path in ("/frame.jpg", "/stats", "/", "/stream.mjpg"):
            answer = _raw(
                running,
                f"GET {path} HTTP/1.1\r\nHost: attacker.example:{port}\r\n"
                "Connection: close\r\n\r\n".encode(),
            )
            assert answer.startswith(b"HTTP/1.0 403"), (path, answer[:80])
        for name in ("127.0.0.1", "localhost"):
            answer = _raw(
                running,
                f"GET /stats HTTP/1.1\r\nHost: {name}:{port}\r\nConnection: close\r\n\r\n".encode(),
            )
            assert answer.startswith(b"HTTP/1.0 200"), name
    finally:
        running.stop()


@pytest.mark.shared
def test_a_stop_from_another_site_is_refused_and_the_run_goes_on(caplog):
    running = Running(caplog, sequential=True)
    port = running.url.rstrip("/").rsplit(":", 1)[1]
    forged = [
        # another site's form: its Origin, a form content type, no token
        (
            f"POST /stop HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://evil.example\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\n\r\n"
        ),
        # no token (a script that guessed the URL)
        f"POST /stop HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n",
        # the right token from another origin
        (
            f"POST /stop HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://evil.example\r\n"
            f"X-Annotate-Token: {{token}}\r\nContent-Length: 0\r\n\r\n"
        ),
    ]
    token = re.search(r'"X-Annotate-Token": "([^"]+)"', running.get("/").decode()).group(1)
    try:
        for request in forged:
            answer = _raw(running, request.replace("{token}", token).encode())
            assert answer.startswith(b"HTTP/1.0 403"), answer[:80]
        before = json.loads(running.get("/stats"))["frames"]
        time.sleep(0.5)
        assert json.loads(running.get("/stats"))["frames"] > before  # still running
    finally:
        running.stop()  # the page's own stop, with its token, works
    assert running.summary.stopped == "stopped from the web page"


@pytest.mark.parametrize("value", ["abc", "9" * 5000, "-1", "1e3"])
@pytest.mark.shared
def test_a_malformed_request_is_a_400_not_a_traceback(caplog, capfd, value):
    running = Running(caplog, sequential=True)
    try:
        request = urllib.request.Request(
            running.url + "frame.jpg", headers={"X-After-Frame": value}
        )
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(request, timeout=10)
        assert error.value.code == 400
    finally:
        running.stop()
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.shared
def test_viewers_are_bounded_and_idle_connections_time_out(caplog, monkeypatch):
    """32 sockets that connect and send nothing or half a request (slowloris) hold every
    slot: one more viewer gets a clear 503 at once; once they time out the preview answers
    again, and the run never stopped."""
    import annotate.sinks.web as web

    monkeypatch.setattr(web, "IDLE_S", 1.0)
    running = Running(caplog, sequential=True)
    host, port = running.url.split("//")[1].rstrip("/").rsplit(":", 1)
    idle = []
    try:
        for i in range(web.MAX_VIEWERS):
            s = socket.create_connection((host, int(port)), timeout=5)
            if i % 2:
                s.sendall(b"GET /stats HTTP/1.1\r\nHost: 127.0.0")  # never finished
            idle.append(s)
        time.sleep(0.2)
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(running.url + "stats", timeout=5)
        assert error.value.code == 503 and error.value.read() == b"too many viewers\n"
        time.sleep(1.5)  # the idle ones are closed
        assert json.loads(running.get("/stats"))["running"]
    finally:
        for s in idle:
            s.close()
        running.stop()
    assert running.summary.frames > 0


@pytest.mark.shared
def test_ipv6_address(caplog):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    running = Running(caplog, host="::1", sequential=True)
    try:
        assert running.url.startswith("http://[::1]:")
        assert json.loads(running.get("/stats"))["running"]
    finally:
        running.stop()


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
@pytest.mark.shared
def test_grid_page_of_several_sources_in_headless_chromium(caplog, monkeypatch, tmp_path):
    """``annotate run A B --serve``: a real browser shows a tile per source, each with new
    frames arriving and its stats."""
    import annotate.sources.camera as camera
    from annotate.pipeline.many import SourceSpec, run_many
    from tests.helpers import FileCamera

    caplog.set_level(logging.INFO, logger="annotate")
    monkeypatch.setattr(camera, "open_capture", lambda _i: FileCamera(PERSON))
    base = RunOptions("camera:0", MODEL, Resolution((CPU,), "test"), json_path=f"{tmp_path}/",
                      serve=("127.0.0.1", 0), fps_every=10**6)  # fmt: skip
    ended = threading.Event()
    specs = [SourceSpec("camera:0", "door"), SourceSpec("camera:1", "<yard>")]
    worker = threading.Thread(target=lambda: run_many(base, specs, stop=ended), daemon=True)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while "Preview at" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        url = re.search(r"Preview at (\S+)", caplog.text).group(1)
        dom = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
             "--timeout=20000", "--dump-dom", url],
            capture_output=True, text=True, timeout=60,
        ).stdout  # fmt: skip
    finally:
        ended.set()
        worker.join(timeout=30)
    tiles = re.findall(r'<div class="tile" data-source="([^"]*)">.*?data-shown="(\d+)"', dom)
    assert sorted(name for name, _ in tiles) == ["&lt;yard&gt;", "door"], dom[-2000:]
    assert all(int(shown) >= 3 for _, shown in tiles), tiles
    assert "FPS" in dom and "<yard>" not in dom  # names only as text
