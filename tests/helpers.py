"""What tests share besides fixtures: where the real model and media are, stand-in devices,
and small video helpers. Tests import from here; ``conftest.py`` holds only fixtures and the
``shared`` marker's skip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from annotate.testing import IMAGES, MODEL, SHARED, VIDEOS, loop_clip
from annotate.testing.camera import FileCamera

# The shared names re-exported, and what is below.
__all__ = ["IMAGES", "MODEL", "ROOT", "SHARED", "VIDEOS", "FileCamera", "loop_clip"]

ROOT = Path(__file__).resolve().parents[1]
#: Whether ../shared (the model and media) is here; tests that read it are marked
#: ``@pytest.mark.shared`` and skipped without it.
HAVE_SHARED = MODEL.is_file()


@dataclass
class Result:
    code: int
    out: str
    err: str


def read_image(name: str) -> np.ndarray:
    import cv2

    image = cv2.imread(str(IMAGES / f"{name}.png"))
    assert image is not None, name
    return image


def sharpness(image: np.ndarray) -> float:
    """Detail in a BGR image (variance of its Laplacian): what blurring takes away."""
    import cv2

    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


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


def seen_at_each_record(monkeypatch: Any, probe: Callable[[], Any]) -> list[Any]:
    """What ``probe()`` returns each time a JSON Lines record is written: what a run holds
    while it runs (a thread count, an interpreter setting)."""
    from annotate.sinks.jsonl import JsonLinesSink

    seen: list[Any] = []
    real = JsonLinesSink.write

    def write(self: Any, frame: Any, annotated: Any, detections: Any) -> None:
        seen.append(probe())
        real(self, frame, annotated, detections)

    monkeypatch.setattr(JsonLinesSink, "write", write)
    return seen
