"""Shared fixtures: the real model and media from ../shared, and a CLI runner.

Tests that read ``../shared`` (the model, videos or photos) are found by what they use and
marked ``shared``; in a clone without it they are skipped, and everything else still runs.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
import types
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ANNOTATE_TEST_SHARED", ROOT.parent / "shared"))
MODEL = SHARED / "models" / "yolox_nano.onnx"
IMAGES = SHARED / "data" / "images"
VIDEOS = SHARED / "data" / "videos"


#: What in a test's code means it reads ../shared: these globals, or these fixtures.
SHARED_NAMES = frozenset({"MODEL", "IMAGES", "VIDEOS", "SHARED", "read_image"})
SHARED_FIXTURES = frozenset({"detector"})


def _reads_shared(code: types.CodeType, module: dict, seen: set[str]) -> bool:
    """Whether code names a shared path, directly or through module-level helpers and
    constants of its test module (followed transitively)."""
    for name in code.co_names:
        if name in SHARED_NAMES:
            return True
        if name in seen:
            continue
        seen.add(name)
        value = module.get(name)
        if _param_reads_shared(value):
            return True
        value = inspect.unwrap(value) if callable(value) else value
        if getattr(value, "__module__", None) != module.get("__name__"):
            continue
        if isinstance(value, types.FunctionType) and _reads_shared(value.__code__, module, seen):
            return True
        if isinstance(value, type) and any(
            _reads_shared(f.__code__, module, seen)
            for f in vars(value).values()
            if isinstance(f, types.FunctionType)
        ):
            return True
    # Nested functions and lambdas in the test body.
    return any(
        _reads_shared(const, module, seen)
        for const in code.co_consts
        if isinstance(const, types.CodeType)
    )


def _param_reads_shared(value: object) -> bool:
    """A path (or its text) under ../shared, or a list or tuple holding one."""
    if isinstance(value, Path):
        return SHARED in value.parents or value == SHARED
    if isinstance(value, str):
        return value.startswith(str(SHARED))
    if isinstance(value, (list, tuple)):
        return any(_param_reads_shared(v) for v in value)
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = not MODEL.is_file()
    skip = pytest.mark.skip(reason=f"needs the shared model and media at {SHARED}")
    for item in items:
        function = getattr(item, "function", None)
        if function is None:
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        fixtures = getattr(item, "fixturenames", ())
        definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
        fixture_funcs = [d.func for name in fixtures for d in definitions.get(name, ())]
        uses = (
            SHARED_FIXTURES & set(fixtures)
            or _reads_shared(function.__code__, function.__globals__, set())
            or any(
                _reads_shared(f.__code__, f.__globals__, set())
                for f in fixture_funcs
                if hasattr(f, "__code__") and f.__module__.startswith("tests")
            )
            or any(_param_reads_shared(v) for v in params.values())
        )
        if uses:
            item.add_marker("shared")
            if missing:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _annotate_logger_restored():
    """Each test gets the 'annotate' logger as it was: the CLI (``setup_logging``) and a batch
    worker run in-process stop it propagating, which would hide later tests' records from
    ``caplog`` (whether they were hidden depended on which tests ran before)."""
    log = logging.getLogger("annotate")
    saved = (list(log.handlers), log.level, log.propagate)
    yield
    log.handlers[:], log.level, log.propagate = saved[0], saved[1], saved[2]


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run ``annotate`` in-process with the given args; returns exit code and output."""
    from annotate.cli import main

    def invoke(*args: str | Path) -> Result:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


@pytest.fixture(scope="session")
def detector():
    from annotate.detector import Detector
    from annotate.providers import PlatformInfo, resolve

    resolution = resolve("cpu", "test", PlatformInfo("Linux", "x86_64"), ["CPUExecutionProvider"])
    return Detector.load(MODEL, resolution)


def read_image(name: str) -> np.ndarray:
    import cv2

    image = cv2.imread(str(IMAGES / f"{name}.png"))
    assert image is not None, name
    return image


class FileCamera:
    """A stand-in capture device: frames from a video file, released at the file's real rate,
    behind the same ``cv2.VideoCapture`` interface a webcam has."""

    def __init__(self, path: Path) -> None:
        import cv2

        self._cap = cv2.VideoCapture(str(path))
        self.fps = self._cap.get(cv2.CAP_PROP_FPS)
        self._start: float | None = None
        self._n = 0
        self.released = False

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self._cap.isOpened()

    def read(self):
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._n / self.fps
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._n += 1
        return self._cap.read()

    def get(self, prop: int) -> float:
        return self._cap.get(prop)

    def release(self) -> None:
        self.released = True
        self._cap.release()


def make_clip(
    path: Path,
    frames: int,
    size: tuple[int, int] = (160, 120),
    rate: int = 25,
    times: list[float] | None = None,
    codec: str = "libx264",
    image: np.ndarray | None = None,
    rotation: int = 0,
    audio: tuple[int, ...] = (),
) -> Path:
    """Write a small test clip with PyAV directly (not through the code under test).

    ``times`` gives each frame's timestamp in seconds (variable frame rate); ``image`` is
    shown in every frame instead of a moving bar; ``rotation`` sets a display-matrix tag
    (degrees counter-clockwise, as phones write it); ``audio`` adds one AAC track per
    frequency (Hz), each as long as the video.
    """
    import av

    if image is not None:
        size = (image.shape[1], image.shape[0])
    width, height = size
    duration = (times[-1] if times else (frames - 1) / rate) + 1 / rate
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        stream.codec_context.time_base = Fraction(1, 1000)
        if rotation and hasattr(stream, "set_display_rotation"):  # PyAV 18 and newer
            stream.set_display_rotation(rotation)
        tracks = [container.add_stream("aac", rate=48000) for _ in audio]
        for i in range(frames):
            if image is None:
                picture = np.zeros((height, width, 3), np.uint8)
                picture[:, : (i * 7) % width] = (40 * i) % 255
            else:
                picture = image
            frame = av.VideoFrame.from_ndarray(picture, format="bgr24")
            t = times[i] if times else i / rate
            frame.pts = round(t * 1000)
            frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
        for track, hz in zip(tracks, audio):
            samples = np.arange(round(duration * 48000)) / 48000
            wave = (0.2 * np.sin(2 * np.pi * hz * samples)).astype(np.float32)
            for start in range(0, len(wave), 1024):
                chunk = av.AudioFrame.from_ndarray(
                    wave[None, start : start + 1024], format="fltp", layout="mono"
                )
                chunk.sample_rate = 48000
                chunk.pts = start
                chunk.time_base = Fraction(1, 48000)
                for packet in track.encode(chunk):
                    container.mux(packet)
            for packet in track.encode(None):
                container.mux(packet)
    if rotation and not hasattr(av.video.stream.VideoStream, "set_display_rotation"):
        _tag_rotation(path, rotation)
    return path


def _tag_rotation(path: Path, degrees: int) -> None:
    """Write into an MP4's track header the display matrix that PyAV 18's
    ``set_display_rotation`` writes (checked byte for byte), for older PyAV."""
    import math
    import struct

    data = bytearray(path.read_bytes())
    box = data.index(b"tkhd") + 4
    times = 32 if data[box] == 1 else 20  # version 1 has 64-bit times and duration
    matrix = box + 4 + times + 16  # after version/flags, times, reserved/layer/volume
    cos, sin = (round(65536 * f(math.radians(degrees))) for f in (math.cos, math.sin))
    data[matrix : matrix + 36] = struct.pack(">9i", cos, -sin, 0, sin, cos, 0, 0, 0, 1 << 30)
    path.write_bytes(bytes(data))


def probe(path: Path) -> dict:
    """Streams, codecs and each stream's duration in seconds, measured from its packets
    (first timestamp to last timestamp + duration), which every container has."""
    import av

    with av.open(str(path)) as container:
        spans: dict[int, list[float]] = {}
        for packet in container.demux():
            if packet.pts is None:
                continue
            start = float(packet.pts * packet.time_base)
            stop = start + float((packet.duration or 0) * packet.time_base)
            lo, hi = spans.get(packet.stream.index, [start, stop])
            spans[packet.stream.index] = [min(lo, start), max(hi, stop)]
        streams = [
            {
                "type": s.type,
                "codec": s.codec_context.name,
                "duration": spans[s.index][1] - spans[s.index][0] if s.index in spans else None,
            }
            for s in container.streams
        ]
    return {"streams": streams}


def decode_video(path: Path) -> tuple[dict, list[float], list[np.ndarray]]:
    """Stream facts, frame timestamps and frames (BGR) of a written video."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        facts = {
            "codec": stream.codec_context.name,
            "pix_fmt": stream.format.name,
            "width": stream.width,
            "height": stream.height,
            "rate": stream.average_rate,
        }
        times, images = [], []
        for frame in container.decode(stream):
            times.append(float(frame.time))
            images.append(frame.to_ndarray(format="bgr24"))
    return facts, times, images


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64x64 YOLOX-layout graph that finds one 'person' (score 0.9) in the top-left corner
    of any picture, in microseconds: for tests of the pipeline's mechanics, not of detection."""
    from tests.onnx_models import constant_model

    out = np.zeros((1, 8 * 8 + 4 * 4 + 2 * 2, 85), np.float32)
    out[0, 0, :6] = [0.5, 0.5, 0, 0, 1.0, 0.9]  # first anchor, stride 8: centre 4, size 8
    return constant_model(tmp_path_factory.mktemp("tiny") / "tiny.onnx", out, [1, 3, 64, 64])


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 frames of a moving bar, 160x120 at 25 FPS, each frame different."""
    return make_clip(tmp_path_factory.mktemp("clip") / "bar.mp4", 200)
