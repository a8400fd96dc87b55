"""Exports that labelling tools import, re-imported with a real reader (COCO: pycocotools) or
one that follows the importer's documented rules (CVAT: keyframes only, ``outside`` ends a
track; Label Studio: keyframes, interpolated while ``enabled``): every box of the JSON Lines
comes back within a pixel, with its track where the format carries one."""

from __future__ import annotations

import itertools
import json
import logging
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import pytest

from tests.helpers import MODEL, SHARED, VIDEOS

CAMPUS = SHARED / "data" / "mot" / "TUD-Campus" / "TUD-Campus.mp4"
M = ("--model", str(MODEL))

#: frame → [(x1, y1, x2, y2, label, track id or None)]
Boxes = dict[int, list[tuple[float, float, float, float, str, int | None]]]


def from_jsonl(path: Path) -> tuple[Boxes, int]:
    boxes: Boxes = defaultdict(list)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for r in records:
        for d in r["detections"]:
            boxes[r["frame"]].append((*d["box"], d["label"], d.get("track_id")))
    return boxes, len(records)


def read_cvat(path: Path) -> tuple[Boxes, dict[str, str]]:
    """CVAT for video 1.1 as its importer reads it: keyframes only; a box with
    ``outside="1"`` ends the track until its next keyframe."""
    root = ET.parse(path).getroot()
    boxes: Boxes = defaultdict(list)
    for track in root.iter("track"):
        shapes = sorted(track.iter("box"), key=lambda b: int(b.get("frame")))
        for shape in shapes:
            if shape.get("keyframe") != "1" or shape.get("outside") == "1":
                continue
            corners = [float(shape.get(k)) for k in ("xtl", "ytl", "xbr", "ybr")]
            boxes[int(shape.get("frame"))].append(
                (*corners, track.get("label"), int(track.get("id")))
            )
    meta = {e.tag: (e.text or "") for e in root.find("meta/task")}
    return boxes, meta


def read_labelstudio(path: Path, width: int, height: int) -> Boxes:
    """Label Studio's video rectangles: each sequence item is a keyframe (frames from 1,
    percent of the frame); between a keyframe that is ``enabled`` and the next, the box is
    interpolated; after one that is not, the object is gone."""
    task = json.loads(path.read_text())[0]
    boxes: Boxes = defaultdict(list)
    for result in task["predictions"][0]["result"]:
        assert result["type"] == "videorectangle"
        items = sorted(result["value"]["sequence"], key=lambda s: s["frame"])
        label, track = result["value"]["labels"][0], result["meta"]["track_id"]

        def put(frame: int, item: dict, label: str = label, track: int | None = track) -> None:
            x, y = item["x"] * width / 100, item["y"] * height / 100
            w, h = item["width"] * width / 100, item["height"] * height / 100
            boxes[frame - 1].append((x, y, x + w, y + h, label, track))

        for item, following in zip(items, [*items[1:], None]):
            put(item["frame"], item)
            if item["enabled"] and following is not None:
                for frame in range(item["frame"] + 1, following["frame"]):
                    t = (frame - item["frame"]) / (following["frame"] - item["frame"])
                    keys = ("x", "y", "width", "height")
                    put(frame, {k: item[k] + t * (following[k] - item[k]) for k in keys})
    return boxes


def same(expected: Boxes, got: Boxes, tracks: bool = True) -> None:
    """Every box back within a pixel, with its label and (``tracks``) its track id; no more."""
    assert sorted(expected) == sorted(got)
    for frame, wanted in expected.items():
        found = sorted(got[frame], key=lambda b: (b[0], b[1]))
        wanted = sorted(wanted, key=lambda b: (b[0], b[1]))
        assert len(found) == len(wanted), frame
        for a, b in zip(wanted, found):
            assert a[:4] == pytest.approx(b[:4], abs=1.0), frame
            assert a[4] == b[4]
            if tracks:
                assert a[5] == b[5]


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """One tracked run of the real pedestrians, with every export and its JSON Lines."""
    from typer.testing import CliRunner

    from annotate.cli import app

    tmp = tmp_path_factory.mktemp("exports")
    args = [
        "run", str(CAMPUS), "--track", "--classes", "person", "--json", str(tmp / "d.jsonl"),
        "--export", f"cvat={tmp / 't.xml'}", "--export", f"labelstudio={tmp / 'ls.json'}",
        "--export", f"coco={tmp / 'c.json'}", "--export", f"yolo={tmp / 'ds'}",
        "--export-every", "5", "--export-frames", "-q", *M,
    ]  # fmt: skip
    # Module-scoped, so outside the per-test logger restore (conftest): the CLI's logging
    # set-up would otherwise stay for every later test.
    log = logging.getLogger("annotate")
    saved = (list(log.handlers), log.level, log.propagate)
    try:
        result = CliRunner().invoke(app, args)
    finally:
        log.handlers[:], log.level, log.propagate = saved
    assert result.exit_code == 0, result.output
    return tmp


@pytest.mark.shared
def test_cvat_export_gives_back_every_tracked_box(tracked):
    expected, frames = from_jsonl(tracked / "d.jsonl")
    got, meta = read_cvat(tracked / "t.xml")
    assert meta["size"] == str(frames) == "71" and meta["mode"] == "interpolation"
    # CVAT numbers its tracks itself: one CVAT track per annotate track, both ways.
    pairs = set()
    for frame, boxes in expected.items():
        for box in boxes:
            match = min(got[frame], key=lambda b: abs(b[0] - box[0]) + abs(b[1] - box[1]))
            pairs.add((box[5], match[5]))
    tracked_pairs = {(ours, theirs) for ours, theirs in pairs if ours is not None}
    assert len({o for o, _ in tracked_pairs}) == len(tracked_pairs)
    assert len({t for _, t in tracked_pairs}) == len(tracked_pairs)
    same(expected, got, tracks=False)
    root = ET.parse(tracked / "t.xml").getroot()
    for track in root.iter("track"):
        shapes = [(int(b.get("frame")), b.get("outside")) for b in track.iter("box")]
        assert all(b.get("keyframe") == "1" for b in track.iter("box"))
        for (frame, outside), nxt in itertools.pairwise(shapes):
            if nxt[0] != frame + 1 and outside == "0":  # a gap is closed by an outside box
                pytest.fail(f"track {track.get('id')}: gap after frame {frame} not closed")
        if shapes[-1][1] == "0":
            assert shapes[-1][0] == frames - 1  # only a track reaching the end stays open


@pytest.mark.shared
def test_labelstudio_export_gives_back_every_box_with_its_track(tracked):
    expected, frames = from_jsonl(tracked / "d.jsonl")
    task = json.loads((tracked / "ls.json").read_text())[0]
    same(expected, read_labelstudio(tracked / "ls.json", 640, 480))
    config = ET.fromstring((tracked / "ls.config.xml").read_text())
    assert [e.tag for e in config] == ["Labels", "Video", "VideoRectangle"]
    assert config.find("Labels/Label").get("value") == "person"
    first = task["predictions"][0]["result"][0]["value"]
    assert first["framesCount"] == frames
    assert first["sequence"][-1]["enabled"] is False


@pytest.mark.shared
def test_coco_export_reads_back_with_pycocotools(tracked):
    from pycocotools.coco import COCO

    expected, frames = from_jsonl(tracked / "d.jsonl")
    coco = COCO(str(tracked / "c.json"))
    assert len(coco.getImgIds()) == frames
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    got: Boxes = defaultdict(list)
    for image in coco.loadImgs(coco.getImgIds()):
        frame = int(image["file_name"][len("frame_") : -len(".jpg")])
        assert (tracked / "c_images" / image["file_name"]).is_file()
        for a in coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]])):
            x, y, w, h = a["bbox"]
            got[frame].append((x, y, x + w, y + h, names[a["category_id"]], a["track_id"]))
    same(expected, {f: b for f, b in got.items() if b})


@pytest.mark.shared
def test_yolo_export_samples_frames_and_reads_back(tracked):
    import cv2

    expected, frames = from_jsonl(tracked / "d.jsonl")
    data = (tracked / "ds" / "data.yaml").read_text()
    assert "train: images" in data and '  0: "person"' in data
    labels = sorted((tracked / "ds" / "labels").glob("*.txt"))
    assert [p.stem for p in labels] == [f"frame_{i:06d}" for i in range(0, frames, 5)]
    for path in labels:
        frame = int(path.stem[len("frame_") :])
        image = cv2.imread(str(tracked / "ds" / "images" / f"{path.stem}.jpg"))
        height, width = image.shape[:2]
        got: Boxes = {frame: []}
        for line in path.read_text().splitlines():
            c, cx, cy, w, h = line.split()
            x1, y1 = (float(cx) - float(w) / 2) * width, (float(cy) - float(h) / 2) * height
            x2, y2 = x1 + float(w) * width, y1 + float(h) * height
            got[frame].append((x1, y1, x2, y2, "person" if c == "0" else c, None))
        same({frame: expected.get(frame, [])}, got, tracks=False)


@pytest.mark.shared
def test_a_cut_is_numbered_from_its_first_frame_and_untracked_boxes_are_single_tracks(
    cli, tmp_path
):
    """``--start``/``--duration``: frame 0 is the cut's first; without ``--track`` every box
    is a CVAT track of its own."""
    clip = VIDEOS / "bottle-detection.mp4"
    r = cli(
        "run", clip, "--start", "10", "--duration", "1", "--json", tmp_path / "d.jsonl",
        "--export", f"cvat={tmp_path / 't.xml'}", "--export", f"coco={tmp_path / 'c.json'}",
        "-q", *M,
    )  # fmt: skip
    assert r.code == 0, r.err
    expected, frames = from_jsonl(tmp_path / "d.jsonl")
    assert frames == 30 and min(expected) == 0
    got, meta = read_cvat(tmp_path / "t.xml")
    assert meta["size"] == "30"
    same(expected, got, tracks=False)
    root = ET.parse(tmp_path / "t.xml").getroot()
    for track in root.iter("track"):
        inside = [b for b in track.iter("box") if b.get("outside") == "0"]
        assert len(inside) == 1
    coco = json.loads((tmp_path / "c.json").read_text())
    assert [i["file_name"] for i in coco["images"]][:2] == ["frame_000000.jpg", "frame_000001.jpg"]
    assert all(a["track_id"] is None for a in coco["annotations"])


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--export", "pascal=x.xml"], "--export takes FORMAT=PATH with FORMAT one of cvat, "
      "labelstudio, coco, yolo (e.g. cvat=tracks.xml); got 'pascal=x.xml'"),
     (["--export", "cvat"], "--export takes FORMAT=PATH"),
     (["--export", "cvat=t.xml", "--export-frames"],
      "--export-frames writes the frames of --export coco=PATH; add it"),
     (["--export", "yolo=ds", "--export-every", "0"], "--export-every must be at least 1"),
     (["--export-every", "5"], "--export-every samples frames for --export yolo: add --export")],
)  # fmt: skip
@pytest.mark.shared
def test_bad_export_options_are_usage_errors(cli, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    r = cli("run", VIDEOS / "bottle-detection.mp4", *args, *M)
    assert r.code == 2 and r.err.startswith(f"Error: {message}"), r.err
    assert len(r.err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.shared
def test_an_export_never_overwrites_the_input(cli, tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes((VIDEOS / "bottle-detection.mp4").read_bytes())
    before = clip.read_bytes()
    r = cli("run", clip, "--export", f"cvat={clip}", *M)
    assert r.code == 2 and f"output {clip} is the input" in r.err
    assert clip.read_bytes() == before


@pytest.mark.shared
def test_batch_writes_each_export_beside_each_video(cli, tmp_path):
    """``annotate batch --export FORMAT``: per video, ``<name>.cvat.xml`` and a
    ``<name>.yolo`` folder, complete (no partial names left), matching that video's JSON
    Lines; ``--resume`` then finds them and skips the videos."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("bottle-detection.mp4", "car-detection.mp4"):
        (inputs / name).write_bytes((VIDEOS / name).read_bytes())
    out = tmp_path / "out"
    common = ("--json", "--export", "cvat", "--export", "yolo", "--export-every", "10",
              "--max-frames", "30", "--no-video", *M)  # fmt: skip
    r = cli("batch", inputs, "-o", out, *common)
    assert r.code == 0, r.err
    for stem in ("bottle-detection", "car-detection"):
        expected, frames = from_jsonl(out / f"{stem}.jsonl")
        got, meta = read_cvat(out / f"{stem}.cvat.xml")
        assert meta["size"] == str(frames) == "30"
        same(expected, got, tracks=False)
        labels = sorted(p.stem for p in (out / f"{stem}.yolo" / "labels").glob("*.txt"))
        assert labels == ["frame_000000", "frame_000010", "frame_000020"]
        assert "names:" in (out / f"{stem}.yolo" / "data.yaml").read_text()
    assert not [p for p in out.rglob("*") if p.name.startswith(".annotate-partial-")]
    r = cli("batch", inputs, "-o", out, "--resume", *common)
    assert r.code == 0 and "Resuming: 2 inputs done before, 0 to do" in r.err, r.err
    import shutil

    shutil.rmtree(out / "car-detection.yolo")  # a missing export is work to do again
    r = cli("batch", inputs, "-o", out, "--resume", *common)
    assert r.code == 0 and "Resuming: 1 input done before, 1 to do" in r.err, r.err
    assert (out / "car-detection.yolo" / "data.yaml").is_file()
