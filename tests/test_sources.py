"""Opening every kind of source, with real media and clips made on the fly."""

from __future__ import annotations

import itertools
import time
from fractions import Fraction

import numpy as np
import pytest

from annotate.errors import SourceError, SourceNotFoundError
from annotate.sources import camera_index, open_source
from annotate.sources.camera import CameraSource
from annotate.sources.images import ImageSource
from annotate.sources.video import VideoSource
from tests.helpers import IMAGES, VIDEOS, FileCamera, make_clip, read_image


@pytest.mark.parametrize(
    ("spec", "index"),
    [("camera", 0), ("CAMERA", 0), ("camera:2", 2), ("0", 0), ("3", 3), ("cam", None),
     ("video.mp4", None), ("camera:x", None)],
)  # fmt: skip
def test_camera_specs(spec, index):
    assert camera_index(spec) == index


@pytest.mark.shared
def test_video_file_facts():
    with open_source(str(VIDEOS / "bottle-detection.mp4")) as source:
        assert isinstance(source, VideoSource)
        info = source.info
        assert (info.width, info.height, info.frames) == (640, 360, 1189)
        assert info.fps == Fraction(179, 6)


@pytest.mark.shared
def test_timestamps_come_from_the_container():
    with open_source(str(VIDEOS / "car-detection.mp4")) as source:
        frames = [f for _, f in zip(range(3), source)]
    assert [f.time for f in frames] == pytest.approx([0.0, 0.08, 0.16])
    assert frames[0].image.shape == (432, 768, 3) and frames[0].image.dtype == np.uint8


@pytest.mark.shared
def test_matroska_with_no_frame_count():
    with open_source(str(VIDEOS / "asl_walk.mkv")) as source:
        assert source.info.frames is None
        assert sum(1 for _ in source) == 89


def test_variable_frame_rate_times_kept(tmp_path):
    times = [0.0, 0.04, 0.2, 0.24, 1.0]
    clip = make_clip(tmp_path / "vfr.mp4", 5, times=times)
    with open_source(str(clip)) as source:
        assert [f.time for f in source] == pytest.approx(times, abs=1e-3)


def test_avi_with_b_frames_gets_times_in_display_order(tmp_path):
    """An AVI keeps decode order only: with B-frames PyAV hands frames their reordered pts
    (0.04, 0.12, 0.16, 0.08 … here). The times must increase, as FFmpeg's best-effort
    stamps do, or the tracker predicts motion over gaps that are not there."""
    import av

    clip = make_clip(tmp_path / "b.avi", 30)
    with av.open(str(clip)) as container:
        raw = [f.pts for f in container.decode(video=0)]
    assert raw != sorted(raw)  # the file really has the problem
    with open_source(str(clip)) as source:
        times = [f.time for f in source]
    assert len(times) == 30
    # Evenly spaced from the first frame: trusting pts until it first went back gave the
    # first frames 0.04, 0.12, 0.16 s (PETS09-S2L1: 0.1, 0.4, 0.5).
    assert np.diff(times) == pytest.approx([0.04] * 29, abs=1e-6), times


@pytest.mark.shared
def test_single_image():
    with open_source(str(IMAGES / "chelsea.png")) as source:
        assert isinstance(source, ImageSource)
        frames = list(source)
    assert len(frames) == 1 and frames[0].image.shape == (300, 451, 3)
    assert frames[0].time is None and frames[0].source.endswith("chelsea.png")


@pytest.mark.shared
def test_image_directory_sorted_by_name():
    with open_source(str(IMAGES)) as source:
        names = [f.source.rsplit("/", 1)[-1] for f in source]
    assert names == ["astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png"]


@pytest.mark.shared
def test_glob():
    with open_source(str(IMAGES / "c*.png")) as source:
        assert [f.source.rsplit("/", 1)[-1] for f in source] == ["chelsea.png", "coffee.png"]


@pytest.mark.shared
def test_damaged_image_in_a_directory_is_skipped(tmp_path, caplog):
    (tmp_path / "a.png").write_bytes((IMAGES / "chelsea.png").read_bytes())
    (tmp_path / "b.png").write_bytes(b"not a png")
    with open_source(str(tmp_path)) as source:
        assert len(list(source)) == 1
    assert "b.png is not a readable image" in caplog.text


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda p: p / "missing.mp4", SourceNotFoundError, "input {} does not exist"),
        (lambda p: p, SourceNotFoundError, "directory {} has no image files"),
        (lambda p: _write(p / "notes.mp4", b"hello, not a video\n"), SourceError,
         "{} is not a video or image file"),
        (lambda p: _write(p / "empty.mp4", b""), SourceError, "{} is not a video or image file"),
        (lambda p: _write(p / "bad.png", b"\x89PNG\r\n\x1a\n garbage"), SourceError,
         "{} is not a readable image (empty or damaged file)"),
        (lambda p: p / "*.jpg", SourceNotFoundError, "no image files match {}"),
    ],
)  # fmt: skip
def test_bad_sources(tmp_path, make, error, message):
    path = make(tmp_path)
    with pytest.raises(error) as info:
        open_source(str(path))
    assert str(info.value).startswith(message.format(path))


def _write(path, data):
    path.write_bytes(data)
    return path


def test_audio_only_file_has_no_video_stream(tmp_path):
    import av

    path = tmp_path / "tone.m4a"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate = 48000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    with pytest.raises(SourceError, match="has no video stream"):
        open_source(str(path))


@pytest.mark.shared
def test_camera_through_a_stand_in_device_at_real_rate():
    """The real CameraSource code, fed by a device that delivers a file at 12.5 FPS."""
    device = FileCamera(VIDEOS / "car-detection.mp4")
    started = time.monotonic()
    with CameraSource(0, open_device=lambda _i: device) as source:
        assert (source.info.width, source.info.height, source.info.live) == (768, 432, True)
        frames = [f for _, f in zip(range(13), source)]
    elapsed = time.monotonic() - started
    assert device.released
    assert [f.index for f in frames] == list(range(13))
    # Timestamps are the real capture clock: 12 intervals of 80 ms at least, and no later
    # than the frame was read (a loaded machine delays frames, never hastens them).
    assert 12 / 12.5 - 0.06 <= frames[-1].time <= elapsed
    assert elapsed >= 12 / 12.5 - 0.02
    assert all(b.time > a.time for a, b in itertools.pairwise(frames))


def test_camera_that_cannot_open():
    class Closed:
        def isOpened(self):  # noqa: N802
            return False

    with pytest.raises(SourceError, match="cannot open camera 4: no camera at that index"):
        CameraSource(4, open_device=lambda _i: Closed())


def test_real_opencv_reports_a_missing_camera():
    with pytest.raises(SourceError, match="cannot open camera 9"):
        open_source("camera:9")


def test_tags_that_are_not_utf8(tmp_path):
    """Damaged or foreign files carry tags in other encodings; they must not stop a run."""
    import av

    clip = tmp_path / "tagged.mkv"
    with av.open(str(clip), "w") as container:
        container.metadata["title"] = "TITLE-TAG-XYZ"
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="bgr24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    data = clip.read_bytes()
    assert data.count(b"TITLE-TAG-XYZ") == 1
    clip.write_bytes(data.replace(b"TITLE-TAG-XYZ", b"TITLE-\xdc\xdc\xdc-XYZ"))
    with open_source(str(clip)) as source:
        assert len(list(source)) == 3


@pytest.mark.shared
def test_deferred_frames_finish_on_any_thread_like_iterated_ones(tmp_path):
    """The concurrent runner converts frames on its workers, out of decode order: each must
    come out as iteration gives it, upright and with its own time."""
    from concurrent.futures import ThreadPoolExecutor

    import cv2

    stored = cv2.rotate(read_image("coffee"), cv2.ROTATE_90_CLOCKWISE)
    clip = make_clip(tmp_path / "phone.mp4", 4, image=stored, rotation=90, rate=10)
    with open_source(str(clip)) as source:
        expected = list(source)
    with open_source(str(clip)) as source, ThreadPoolExecutor(2) as pool:
        loads = list(source.deferred())
        frames = list(pool.map(lambda load: load(), reversed(loads)))[::-1]
    assert [(f.index, f.time) for f in frames] == [(i, i / 10) for i in range(4)]
    assert [f.image.shape for f in frames] == [(400, 600, 3)] * 4
    for got, want in zip(frames, expected):
        np.testing.assert_array_equal(got.image, want.image)


@pytest.mark.shared
def test_frames_of_sources_that_cannot_defer_come_ready():
    with open_source(str(IMAGES / "coffee.png")) as source:
        (load,) = source.deferred()
        frame = load()
    assert (frame.index, frame.width, frame.height) == (0, 600, 400)
