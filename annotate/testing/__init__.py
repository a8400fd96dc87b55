"""Test doubles and synthetic inputs that the tests and the studies (``scripts/``) share, as
``numpy.testing`` does for numpy: a stand-in camera fed from a file, tiny ONNX graphs, scenes
with known paths, and the baselines annotate is measured against. Nothing in the pipeline
imports this package.
"""

from __future__ import annotations

import os
from pathlib import Path


def shared_dir() -> Path:
    """The real model and media: ``../shared`` beside a checkout of this repository, or
    ``ANNOTATE_TEST_SHARED``. Tests and studies that read it say so (``shared``)."""
    default = Path(__file__).resolve().parents[2].parent / "shared"
    return Path(os.environ.get("ANNOTATE_TEST_SHARED", default))


SHARED = shared_dir()
MODEL = SHARED / "models" / "yolox_nano.onnx"
IMAGES = SHARED / "data" / "images"
VIDEOS = SHARED / "data" / "videos"


def loop_clip(src: Path, dst: Path, times: int) -> Path:
    """``src`` played ``times`` times in a row, remuxed (no encoding): a long clip, at no
    encoding cost, for tests that must still be mid-job when they stop it and for studies
    that run longer than the footage."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        video = inp.streams.video[0]
        stream = out.add_stream_from_template(video)
        packets = [p for p in inp.demux(video) if p.dts is not None]
        stamps = [(p.pts, p.dts) for p in packets]
        span = max(p for p, _ in stamps) - min(p for p, _ in stamps) + packets[1].duration
        for i in range(times):  # the same packets again, each pass one clip length later
            for packet, (pts, dts) in zip(packets, stamps):
                packet.pts, packet.dts = pts + i * span, dts + i * span
                packet.stream = stream
                out.mux(packet)
    return dst
