"""--track end to end with the real model: clips with known paths, every runner, outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from annotate.testing.scenes import FPS, scenes, write_scene
from annotate.tracking import Tracker
from annotate.tracking.metrics import evaluate
from tests.helpers import IMAGES, MODEL, VIDEOS, FileCamera, decode_video

pytestmark = pytest.mark.slow
M = ["--model", str(MODEL), "-q"]


def _tracked(records: list[dict]) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for r in records:
        people = [d for d in r["detections"] if d["label"] == "person" and d["track_id"]]
        out.append(
            (
                np.array([d["track_id"] for d in people], np.int64),
                np.array([d["box"] for d in people], np.float64).reshape(-1, 4),
            )
        )
    return out


def _truth(truths: list) -> list[tuple[np.ndarray, np.ndarray]]:
    return [
        (
            np.array([k for k, _ in t], np.int64),
            np.array([b for _, b in t], np.float64).reshape(-1, 4),
        )
        for t in truths
    ]


@pytest.fixture(scope="module")
def crossing(tmp_path_factory) -> tuple[Path, list]:
    path = tmp_path_factory.mktemp("scenes") / "crossing.mp4"
    return path, write_scene(scenes()[0], path)


def _run(cli, clip: Path, tmp_path: Path, *args: str) -> list[dict]:
    dets = tmp_path / "d.jsonl"
    r = cli("run", clip, "--json", dets, *args, *M)
    assert r.code == 0, r.err
    return [json.loads(line) for line in dets.read_text().splitlines()]


@pytest.mark.shared
def test_two_people_crossing_keep_their_identities(cli, tmp_path, crossing):
    """One walks behind the other; both identities survive, in both runners, and the
    tracker beats frame-to-frame matching on identity agreement (IDF1)."""
    clip, truths = crossing
    concurrent = _run(cli, clip, tmp_path, "--track")
    sequential = _run(cli, clip, tmp_path, "--track", "--sequential")
    assert [r["detections"] for r in concurrent] == [r["detections"] for r in sequential]
    score = evaluate(_truth(truths), _tracked(concurrent))
    assert score.id_switches == 0
    assert score.idf1 > 0.9
    ids = {d["track_id"] for r in concurrent for d in r["detections"] if d["label"] == "person"}
    assert {1, 2} <= ids  # identities start at 1
    # The naive baseline (greedy IoU, frame to frame) on the same clip without --track.
    from annotate.testing.baselines import GreedyIou, track

    plain = _run(cli, clip, tmp_path)
    from annotate.types import Detections

    found = [
        Detections(
            [d["box"] for d in r["detections"] if d["label"] == "person"] or np.zeros((0, 4)),
            [d["score"] for d in r["detections"] if d["label"] == "person"],
            [0] * sum(d["label"] == "person" for d in r["detections"]),
        )
        for r in plain
    ]
    assert evaluate(_truth(truths), track(GreedyIou(), found)).idf1 < score.idf1


@pytest.mark.shared
def test_identity_survives_six_black_frames(detector):
    scene = scenes()[1]
    tracker = Tracker()
    before, after = set(), set()
    for i, (image, _truth) in enumerate(scene.render()):
        out = tracker.update(detector(image), i / FPS)
        people = {
            t for t, c in zip(out.track_id.tolist(), out.class_ids.tolist()) if c == 0 and t > 0
        }
        (before if i < scene.black.start else after).update(people)
    assert before == after == {1}


@pytest.mark.shared
def test_outputs_name_tracks_json_mot_and_drawing(cli, tmp_path, crossing):
    clip, _truths = crossing
    out, mot = tmp_path / "o.mp4", tmp_path / "t.txt"
    records = _run(
        cli,
        clip,
        tmp_path,
        "--track",
        "--trails",
        "15",
        "-o",
        str(out),
        "--mot",
        str(mot),
        "--max-frames",
        "40",
    )
    first = records[0]["detections"]
    assert all(d["track_id"] is None and d["predicted"] is False for d in first)  # unconfirmed
    later = [d for d in records[-1]["detections"] if d["label"] == "person"]
    assert sorted(d["track_id"] for d in later) == [1, 2]
    lines = mot.read_text().splitlines()
    frame, track, x, y, w, h, _score, *rest = lines[-1].split(",")
    assert (int(frame), rest) == (40, ["-1", "-1", "-1"])  # frames count from 1
    box = next(d["box"] for d in later if d["track_id"] == int(track))
    x1, y1 = float(x), float(y)
    assert [x1, y1, x1 + float(w), y1 + float(h)] == pytest.approx(box, abs=0.02)
    assert len({line.split(",")[0] for line in lines}) >= 35
    _facts, _times, images = decode_video(out)
    assert len(images) == 40
    # Each identity has its own colour: the two people's box outlines differ.
    xa, ya, *_ = (round(v) for v in later[0]["box"])
    xb, yb, *_ = (round(v) for v in later[1]["box"])
    colour_a, colour_b = images[-1][ya, xa + 20].astype(int), images[-1][yb, xb + 20].astype(int)
    assert np.abs(colour_a - colour_b).max() > 60


@pytest.mark.shared
def test_detect_every_third_frame_predicts_the_others(cli, tmp_path, crossing):
    clip, truths = crossing
    for args in ([], ["--sequential"]):
        records = _run(cli, clip, tmp_path, "--detect-every", "3", *args)
        predicted = [all(d["predicted"] for d in r["detections"]) for r in records[9:]]
        assert predicted == [i % 3 != 0 for i in range(9, len(records))]
        # Every frame still shows both people (confirmed tracks move on between detections).
        assert all(len([d for d in r["detections"] if d["track_id"]]) >= 2 for r in records[9:50])
        assert evaluate(_truth(truths[:50]), _tracked(records[:50])).idf1 > 0.8


@pytest.mark.shared
def test_image_folder_is_a_sequence(cli, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    import cv2

    image = cv2.imread(str(IMAGES / "astronaut.png"))
    for i in range(5):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.roll(image, 4 * i, axis=1))
    records = _run(cli, folder, tmp_path, "--track")
    assert [d["track_id"] for d in records[-1]["detections"] if d["label"] == "person"] == [1]


@pytest.mark.shared
def test_live_camera_tracks_with_dropped_frames(tmp_path, monkeypatch):
    import annotate.sources.camera as camera
    from annotate.pipeline import RunOptions, run
    from annotate.providers import PlatformInfo, resolve

    bottles = VIDEOS / "bottle-detection.mp4"
    monkeypatch.setattr(camera, "open_capture", lambda _i: FileCamera(bottles))
    resolution = resolve("cpu", "test", PlatformInfo("Linux", "x86_64"), ["CPUExecutionProvider"])
    dets = tmp_path / "d.jsonl"
    options = RunOptions(
        source="camera",
        model=MODEL,
        resolution=resolution,
        json_path=str(dets),
        max_frames=60,
        track=True,
        detect_every=None,
    )
    summary = run(options)
    assert summary.mode == "sequential" and summary.tracks and summary.tracks >= 1
    records = [json.loads(line) for line in dets.read_text().splitlines()]
    assert len(records) == 60
    assert any(d["track_id"] for r in records for d in r["detections"])
    # Auto pacing: a 30 FPS camera and a CPU that cannot detect every frame in 33 ms.
    assert summary.detected < summary.frames or summary.dropped == 0


@pytest.mark.parametrize(("args", "line"), [
    (["--detect-every", "0"], "--detect-every must be at least 1, got 0"),
    (["--detect-every", "often"], "--detect-every takes a whole number or 'auto', got 'often'"),
    (["--track", "--track-buffer", "-1"], "--track-buffer must be a finite number of seconds, "
                                          "0 or more, got -1"),
    (["--mot", "missing/t.txt"], "cannot write missing/t.txt: directory {tmp}/missing does "
                                 "not exist"),
    (["--trails", "10"], "--trails draws the paths of tracks: add --track"),
])  # fmt: skip
@pytest.mark.shared
def test_bad_tracking_options(cli, tmp_path, monkeypatch, args, line):
    monkeypatch.chdir(tmp_path)
    r = cli("run", VIDEOS / "car-detection.mp4", "--json", "d.jsonl", *args, *M)
    assert (r.code, r.err.strip()) == (2, "Error: " + line.format(tmp=tmp_path.resolve()))
    assert not (tmp_path / "d.jsonl").exists()


@pytest.mark.shared
def test_mot_implies_track_and_says_so(cli, tmp_path):
    r = cli(
        "run",
        VIDEOS / "car-detection.mp4",
        "--mot",
        tmp_path / "t.txt",
        "--max-frames",
        "5",
        "--model",
        str(MODEL),
    )
    assert r.code == 0
    assert "Tracking is on for --mot" in r.err
    assert "--mot writes the tracks of every class to one file" in r.err
    assert "5 frames" in r.err and "track" in r.err.splitlines()[-2]
    one = cli("run", VIDEOS / "car-detection.mp4", "--mot", tmp_path / "c.txt",
              "--classes", "car", "--max-frames", "2", "--model", str(MODEL))  # fmt: skip
    assert one.code == 0 and "every class" not in one.err


@pytest.mark.parametrize(("args", "line"), [
    (["--line", "1,2,3"], "--line '1,2,3': a line takes 4 numbers (x1,y1,x2,y2), got 3"),
    (["--zone", "0,0,1,1"], "--zone '0,0,1,1': a zone takes 3 or more points "
                            "(x1,y1,x2,y2,x3,y3,…), got 4 numbers"),
    (["--line", "0.5,0,700,400"], "--line '0.5,0,700,400': mixes fractions of the frame and "
                                  "pixels; give all four coordinates one way"),
    (["--line", "a=0,0,1,1", "--line", "a=1,0,0,1"], "--line: the name 'a' is used twice; "
                                                     "names must differ"),
    (["--blur", "persn"], "unknown class 'persn' in --blur; did you mean person?"),
    (["--blur", "--blur-style", "foo"], "--blur-style takes gaussian, pixelate, solid; got 'foo'"),
    (["--line", "0,0,1,1", "--anchor", "top"], "--anchor takes bottom, center; got 'top'"),
    (["--zone", "0,0,1,0,1,1", "--line-frames", "0"], "--line-frames must be at least 1, got 0"),
])  # fmt: skip
@pytest.mark.shared
def test_bad_counting_and_blur_options(cli, tmp_path, monkeypatch, args, line):
    """One line, exit 2, before any output exists."""
    monkeypatch.chdir(tmp_path)
    r = cli("run", VIDEOS / "car-detection.mp4", "--json", "d.jsonl", "-o", "o.mp4", *args, *M)
    assert (r.code, r.err.strip().splitlines()[-1]) == (2, "Error: " + line)
    assert "Traceback" not in r.err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.shared
def test_blur_alone_means_people_and_lines_say_tracking_is_on(cli, tmp_path):
    dets = tmp_path / "d.jsonl"
    r = cli(
        "run",
        VIDEOS / "one-by-one-person-detection.mp4",
        "--line",
        "0,0.5,1,0.5",
        "--blur",
        "--json",
        dets,
        "--max-frames",
        "3",
        "--model",
        str(MODEL),
    )
    assert r.code == 0, r.err
    assert "Tracking is on for --line and --blur" in r.err
    record = json.loads(dets.read_text().splitlines()[-1])
    assert record["counts"]["lines"]["line1"] == {"in": 0, "out": 0, "by_class": {}}
    assert record["events"] == []


@pytest.mark.shared
def test_batches_and_detect_every_track_like_the_plain_loop(cli, tmp_path, crossing):
    """--batch 4 with a dynamic-batch copy of the model, detecting every 2nd frame: the
    concurrent runner's workers take the due frames in batches; the tracker still sees
    every frame in order, so the output is the sequential loop's."""
    from annotate.testing.models import batchable_yolox

    clip, _truths = crossing
    model = batchable_yolox(MODEL, tmp_path / "batch.onnx")
    args = ["--detect-every", "2", "--model", str(model), "-q"]
    dets_a, dets_b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert cli("run", clip, "--json", dets_a, "--batch", "4", *args).code == 0
    assert cli("run", clip, "--json", dets_b, "--sequential", *args).code == 0
    batched = [json.loads(line)["detections"] for line in dets_a.read_text().splitlines()]
    plain = [json.loads(line)["detections"] for line in dets_b.read_text().splitlines()]
    assert len(batched) == 120
    for a, b in zip(batched, plain):  # a batch may shift a score in its last digits
        assert [(d["track_id"], d["predicted"]) for d in a] == [
            (d["track_id"], d["predicted"]) for d in b
        ]
        assert np.allclose(
            [d["box"] for d in a] or np.zeros((0, 4)),
            [d["box"] for d in b] or np.zeros((0, 4)),
            atol=0.5,
        )


@pytest.mark.shared
def test_counts_on_a_clip_with_known_crossings(cli, tmp_path, crossing):
    """The crossing scene: walker 1 goes left to right through the middle, walker 2 right to
    left. A line down the middle (pointing down: "in" is right to left on screen) counts
    one in and one out; the left half has 2 entered, walker 2 inside at the end."""
    clip, _truths = crossing
    dets = tmp_path / "d.jsonl"
    r = cli(
        "run",
        clip,
        "--json",
        dets,
        "--line",
        "middle=0.5,0,0.5,1",
        "--zone",
        "left=0,0,0.5,0,0.5,1,0,1",
        "--model",
        str(MODEL),
    )
    assert r.code == 0, r.err
    records = [json.loads(line) for line in dets.read_text().splitlines()]
    last = records[-1]["counts"]
    assert last["lines"]["middle"] == {
        "in": 1,
        "out": 1,
        "by_class": {"person": {"in": 1, "out": 1}},
    }
    assert (last["zones"]["left"]["now"], last["zones"]["left"]["entered"]) == (1, 2)
    events = [(r["frame"], e) for r in records for e in r["events"]]
    crossings = sorted((e["track_id"], e["direction"]) for _f, e in events if "line" in e)
    assert crossings == [(1, "out"), (2, "in")]
    assert "Counts" in r.err and "middle" in r.err and "2 entered" in r.err  # the table
