"""Outputs decoded back: H.264 files, JSON Lines records, images, and what is drawn."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

from annotate.annotators import BoxAnnotator, LabelAnnotator, class_colour
from annotate.detector.labels import COCO_LABELS
from annotate.errors import OutputPathError
from annotate.sinks.encoding import EncodeOptions
from annotate.sinks.jsonl import JsonLinesSink
from annotate.sinks.video import VideoSink
from annotate.sinks.window import display_problem
from annotate.types import Detections, Frame, SourceInfo
from tests.helpers import decode_video


def _frames(n, size, rate=None, times=None):
    w, h = size
    for i in range(n):
        image = np.zeros((h, w, 3), np.uint8)
        image[:, : (i * 5) % w] = 200
        t = times[i] if times else i / rate
        yield Frame(i, t, image, "test")


def _write(path, info, frames):
    with VideoSink(path, info) as sink:
        for frame in frames:
            sink.write(frame, frame.image, Detections.empty())
    return decode_video(path)


def test_h264_at_non_integer_rate(tmp_path):
    rate = Fraction(179, 6)
    info = SourceInfo(640, 360, rate, time_base=Fraction(1, 11456))
    facts, times, images = _write(tmp_path / "o.mp4", info, _frames(60, (640, 360), float(rate)))
    assert facts == {
        "codec": "h264",
        "pix_fmt": "yuv420p",
        "width": 640,
        "height": 360,
        "rate": rate,
    }
    assert len(images) == 60
    assert times[-1] == pytest.approx(59 * 6 / 179, abs=1e-3)


def test_frame_threads_write_every_frame_at_its_time(tmp_path):
    """The GPU plan's x264 frame threads hold frames inside the encoder: closing the sink
    must still write every one, in order, at its own time."""
    info = SourceInfo(320, 240, Fraction(30))
    path = tmp_path / "f.mp4"
    options = EncodeOptions(preset="ultrafast", threads=4, frame_threads=True)
    frames = list(_frames(40, (320, 240), 30))
    with VideoSink(path, info, options) as sink:
        for frame in frames:
            sink.write(frame, frame.image, Detections.empty())
    _facts, times, images = decode_video(path)
    assert len(images) == 40 and times == pytest.approx([i / 30 for i in range(40)], abs=1e-3)
    bright = [int((image[:, :, 0] > 100).sum(axis=0).astype(bool).sum()) for image in images]
    assert bright[1:] == pytest.approx([(i * 5) % 320 for i in range(1, 40)], abs=3)


def test_each_frame_is_encoded_as_it_was_though_the_sink_reuses_its_buffer(tmp_path):
    """The sink converts every frame into one I420 buffer that its PyAV frame points at;
    x264's frame threads still hold frames when the next is converted. Losslessly encoded
    (``--crf 0``), each decoded frame must be exactly its own picture, not a later one's."""
    import av

    from annotate.sinks.video import to_i420

    info = SourceInfo(320, 240, Fraction(30))
    path = tmp_path / "lossless.mkv"
    options = EncodeOptions(crf=0, preset="ultrafast", threads=4, frame_threads=True)
    rng = np.random.default_rng(7)
    pictures = [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(24)]
    with VideoSink(path, info, options) as sink:
        for i, picture in enumerate(pictures):
            sink.write(Frame(i, i / 30, picture, "test"), picture, Detections.empty())
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="yuv420p") for f in container.decode(video=0)]
    assert len(decoded) == 24
    for picture, got in zip(pictures, decoded, strict=True):
        assert np.array_equal(got, to_i420(picture))


def test_a_file_that_could_not_be_created_is_not_called_incomplete(tmp_path):
    """FFmpeg creates the file at the first packet, frames after the sink opened: where it
    cannot (its folder gone, /proc), the error says so, not "about 0 of N frames are
    readable"."""
    from annotate.errors import OutputError

    folder = tmp_path / "gone"
    folder.mkdir()
    info = SourceInfo(64, 48, Fraction(25))
    sink = VideoSink(folder / "o.mp4", info)
    folder.rmdir()
    with pytest.raises(OutputError) as caught, sink:
        for frame in _frames(30, (64, 48), 25):
            sink.write(frame, frame.image, Detections.empty())
    assert str(caught.value) == f"cannot write {folder / 'o.mp4'}: No such file or directory"


def test_odd_size_is_padded_and_content_kept(tmp_path):
    info = SourceInfo(161, 121, Fraction(25))
    facts, _times, images = _write(tmp_path / "odd.mp4", info, _frames(5, (161, 121), 25))
    assert (facts["width"], facts["height"]) == (162, 122)
    # Frame 4 has its left 20 columns bright; compression keeps that.
    assert images[4][:121, :18].mean() > 180 and images[4][:121, 25:160].mean() < 20


def test_single_frame(tmp_path):
    _facts, times, images = _write(
        tmp_path / "one.mkv", SourceInfo(64, 48, Fraction(30)), _frames(1, (64, 48), 30)
    )
    assert len(images) == 1 and times == [0.0]


def test_variable_timestamps_survive(tmp_path):
    times = [0.0, 0.1, 0.15, 0.6, 0.61, 2.0]
    _f, out_times, _i = _write(
        tmp_path / "vfr.mp4", SourceInfo(64, 48, Fraction(10)), _frames(6, (64, 48), times=times)
    )
    assert out_times == pytest.approx(times, abs=2e-3)


@pytest.mark.parametrize("name", ["out.avi", "out.gif", "out"])
def test_unsupported_extension(tmp_path, name):
    with pytest.raises(OutputPathError, match="unsupported extension"):
        VideoSink(tmp_path / name, SourceInfo(64, 48, Fraction(30)))


def test_close_is_idempotent(tmp_path):
    sink = VideoSink(tmp_path / "x.mp4", SourceInfo(64, 48, Fraction(30)))
    sink.close()
    sink.close()


def test_json_lines_record(tmp_path):
    path = tmp_path / "d.jsonl"
    det = Detections([[1.234, 2, 30.5, 40]], [0.91234], [39], labels=COCO_LABELS)
    with JsonLinesSink(path) as sink:
        sink.write(Frame(7, 0.25, np.zeros((48, 64, 3), np.uint8), "v.mp4"), None, det)  # type: ignore[arg-type]
        sink.write(Frame(8, 0.3, np.zeros((48, 64, 3), np.uint8), "v.mp4"), None, Detections())  # type: ignore[arg-type]
    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == {
        "frame": 7,
        "source": "v.mp4",
        "time": 0.25,
        "width": 64,
        "height": 48,
        "detections": [
            {"label": "bottle", "class_id": 39, "score": 0.9123, "box": [1.23, 2.0, 30.5, 40.0]}
        ],
    }
    assert json.loads(lines[1])["detections"] == []


def test_boxes_and_labels_are_drawn_in_class_colours():
    scene = np.zeros((360, 640, 3), np.uint8)
    det = Detections([[100, 100, 300, 300]], [0.9], [39], labels=COCO_LABELS)
    BoxAnnotator().annotate(scene, det)
    LabelAnnotator().annotate(scene, det)
    colour = class_colour(39)
    edge = scene[200, 97:104].astype(int)  # across the left edge of the box
    assert (np.abs(edge - colour).max(axis=1) <= 8).any()
    assert (scene[200, 200] == 0).all()  # inside is left alone
    tab = scene[85:98, 100:160]  # the label tab above the box
    assert (tab == colour).all(axis=-1).mean() > 0.5
    assert (tab != colour).any(axis=-1).any()  # text on it


def _text_height(size):
    w, h = size
    scene = np.zeros((h, w, 3), np.uint8)
    LabelAnnotator().annotate(
        scene, Detections([[w / 4, h / 2, w / 2, h]], [0.5], [0], labels=COCO_LABELS)
    )
    rows = np.where(scene.any(axis=(1, 2)))[0]
    return rows.max() - rows.min()


def test_labels_scale_with_resolution():
    small, large = _text_height((640, 360)), _text_height((3840, 2160))
    assert small >= 12  # readable at 360p
    assert large / small > 4  # and not a speck at 4K


def test_window_refuses_without_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert display_problem() == "no display (DISPLAY and WAYLAND_DISPLAY are unset)"


def test_repeated_or_backward_timestamps_stay_playable(tmp_path):
    """A damaged source can repeat a timestamp or go back; each such frame is placed one
    nominal frame after the previous one, so every frame is kept and times keep rising."""
    times = [0.0, 0.04, 0.04, 0.02, 0.2]
    _f, out_times, images = _write(
        tmp_path / "t.mp4", SourceInfo(64, 48, Fraction(25)), _frames(5, (64, 48), times=times)
    )
    assert len(images) == 5
    assert out_times == pytest.approx([0.0, 0.04, 0.08, 0.12, 0.2], abs=2e-3)


@pytest.mark.parametrize(
    ("size", "preset", "lookahead"),
    [
        ((1280, 720), None, 10),
        ((1920, 1080), None, 4),
        ((3840, 2160), None, 3),
        ((1920, 1080), "fast", 30),
    ],
)
def test_x264_lookahead_is_capped_for_large_frames(tmp_path, size, preset, lookahead):
    """x264 records its settings in the stream: the default preset's lookahead shrinks at
    1080p to bound memory, and a preset the user chose is left as it is."""
    from annotate.sinks.video import EncodeOptions

    path = tmp_path / "x.mp4"
    with VideoSink(path, SourceInfo(*size, Fraction(30)), EncodeOptions(preset=preset)) as sink:
        for frame in _frames(3, size, rate=30):
            sink.write(frame, frame.image, Detections.empty())
    assert f"rc_lookahead={lookahead} ".encode() in path.read_bytes()
    assert len(decode_video(path)[2]) == 3


@pytest.mark.shared
def test_a_run_that_writes_no_picture_draws_nothing(tmp_path):
    """JSON and MOT outputs take the boxes, not the drawing: with only those the annotators
    are skipped; with a video they draw every frame."""
    from annotate.pipeline.build import run
    from annotate.pipeline.options import RunOptions
    from annotate.providers import CPU, Resolution
    from tests.helpers import MODEL, VIDEOS

    class Counting:
        calls = 0

        def annotate(self, image, detections):
            Counting.calls += 1
            return image

    common = {
        "source": str(VIDEOS / "bottle-detection.mp4"),
        "model": MODEL,
        "resolution": Resolution((CPU,), "test"),
        "max_frames": 12,
    }
    jsonl = tmp_path / "a.jsonl"
    only_boxes = RunOptions(json_path=jsonl, mot=tmp_path / "a.txt", track=True, **common)
    run(only_boxes, annotators=[Counting()])
    assert Counting.calls == 0 and len(jsonl.read_text().splitlines()) == 12
    run(RunOptions(json_path=jsonl, output=tmp_path / "a.mp4", **common), annotators=[Counting()])
    assert Counting.calls == 12
