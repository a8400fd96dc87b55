"""Several sources in one process: names, output templates and the sources file (fast), then
real runs on the shared clips: each source's outputs are what a run of its own gives, a
source that fails fails alone, and Ctrl-C leaves every output playable."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from annotate.errors import UsageError
from annotate.pipeline.many import (
    SourceSpec,
    default_name,
    per_source,
    read_sources,
    unique_names,
)


def test_names_come_from_the_address_and_clashes_are_numbered():
    assert default_name("videos/door.mp4") == "door"
    assert default_name("camera:2") == "camera2" and default_name("0") == "camera0"
    assert (
        default_name("rtsp://admin:secret@cam.local:554/live/ch1?tcp") == "cam.local_554_live_ch1"
    )
    specs = [SourceSpec("a/door.mp4"), SourceSpec("b/door.mp4"), SourceSpec("x", "door"),
             SourceSpec("camera")]  # fmt: skip
    assert unique_names(specs) == ["door", "door-2", "door-3", "camera0"]


def test_outputs_are_a_directory_or_a_name_template(tmp_path):
    assert per_source(tmp_path, "door", ".mp4", "-o") == tmp_path / "door.mp4"
    assert per_source("rec/", "door", ".jsonl", "--json") == Path("rec/door.jsonl")
    assert per_source("out/{name}-boxes.jsonl", "door", ".jsonl", "--json") == (
        "out/door-boxes.jsonl"
    )
    assert per_source("-", "door", ".jsonl", "--json") == "-"  # records name their source
    # A path option has lost its trailing slash: one without a file suffix names a folder.
    assert per_source(Path("rec/"), "door", ".mp4", "-o") == Path("rec/door.mp4")
    with pytest.raises(UsageError, match=r"-o out.mp4: with several sources, give a directory"):
        per_source(Path("out.mp4"), "door", ".mp4", "-o")


def test_a_sources_file_names_each_source_and_its_own_settings(tmp_path):
    path = tmp_path / "cams.toml"
    path.write_text(
        '[[source]]\nurl = "rtsp://cam1/live"\nname = "door"\nline = "0,0.5,1,0.5"\n'
        'detect_every = 2\n\n[[source]]\nurl = "yard.mp4"\nblur = "person,car"\n'
    )
    door, yard = read_sources(path)
    assert door == SourceSpec(
        "rtsp://cam1/live", "door", {"line": "0,0.5,1,0.5", "detect_every": 2}
    )
    assert yard.name is None and yard.settings == {"blur": "person,car"}
    path.write_text('[[source]]\nurl = "a.mp4"\nzoom = 2\n')
    with pytest.raises(UsageError, match="source 1: unknown key 'zoom'"):
        read_sources(path)
    path.write_text('[[source]]\nname = "a"\n')
    with pytest.raises(UsageError, match="source 1: give it a url"):
        read_sources(path)
    path.write_text("[[source]\n")
    with pytest.raises(UsageError, match="is not valid TOML"):
        read_sources(path)


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.shared
def test_two_sources_give_what_two_separate_runs_give(tmp_path):
    """The same scene twice, tracked and counted: each source's records, MOT file and counts
    are those of a run of its own (identities from 1 each), its records named by source."""
    from annotate.pipeline import RunOptions, run
    from annotate.pipeline.many import run_many
    from annotate.providers import CPU, Resolution
    from tests.helpers import MODEL, VIDEOS

    clip = str(VIDEOS / "one-by-one-person-detection.mp4")
    common = {
        "model": MODEL,
        "resolution": Resolution((CPU,), "test"),
        "max_frames": 90,
        "track": True,
        "lines": ["door=0.5,0,0.5,1"],
        "sequential": True,  # frame for frame the same on either side
    }
    alone = tmp_path / "alone"
    alone.mkdir()
    single = run(RunOptions(clip, json_path=alone / "a.jsonl", mot=alone / "a.txt", **common))
    out = tmp_path / "out"
    out.mkdir()
    base = RunOptions(clip, json_path=out, mot=str(out / "{name}.txt"), **common)
    results = run_many(base, [SourceSpec(clip, "left"), SourceSpec(clip, "right")])
    assert [r.error for r in results] == [None, None]
    expected = _records(alone / "a.jsonl")
    assert sum(len(r["detections"]) for r in expected) > 40
    for name, result in zip(("left", "right"), results):
        assert result.summary is not None and result.summary.frames == 90
        got = _records(out / f"{name}.jsonl")
        assert {r["source"] for r in got} == {name}
        for r in got + expected:
            r.pop("source", None)
        assert got == expected
        assert (out / f"{name}.txt").read_text() == (alone / "a.txt").read_text()
        assert result.summary.counts == single.counts
        assert result.summary.tracks == single.tracks


def test_a_folder_named_with_a_slash_is_made(tmp_path, cli, tiny_model):
    from tests.helpers import make_clip

    a, b = make_clip(tmp_path / "a.mp4", frames=6), make_clip(tmp_path / "b.mp4", frames=6)
    r = cli("run", a, b, "--json", f"{tmp_path}/new/deeper/", "-o", f"{tmp_path}/videos/",
            "--model", tiny_model)  # fmt: skip
    assert r.code == 0, r.err
    assert sorted(p.name for p in (tmp_path / "new" / "deeper").iterdir()) == ["a.jsonl", "b.jsonl"]
    # -o is a path option: its trailing slash is gone by the time the run sees it.
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == ["a.mp4", "b.mp4"]
    blocked = tmp_path / "file"
    blocked.write_text("")
    r = cli("run", a, b, "--json", f"{blocked}/sub/", "--model", tiny_model)
    assert r.code == 2 and f"cannot create the folder {blocked}/sub/" in r.err
    assert "Traceback" not in r.err


def test_several_sources_pass_the_gil_sooner_while_they_run(tmp_path, tiny_model, monkeypatch):
    """Each source's frames hand the GIL between its threads; with many sources a waiting
    thread is not left for Python's default 5 ms. The setting is the run's only."""
    import sys

    from annotate.pipeline import RunOptions
    from annotate.pipeline.many import run_many
    from tests.helpers import make_clip, seen_at_each_record

    seen = seen_at_each_record(monkeypatch, sys.getswitchinterval)
    before = sys.getswitchinterval()
    clips = [make_clip(tmp_path / f"{n}.mp4", frames=4) for n in "ab"]
    options = RunOptions(str(clips[0]), tiny_model, json_path=f"{tmp_path}/")
    run_many(options, [SourceSpec(str(c)) for c in clips])
    assert len(seen) == 8 and set(seen) == {min(before, 0.001)}
    assert sys.getswitchinterval() == before


@pytest.mark.shared
def test_a_source_that_cannot_open_fails_alone(tmp_path, cli):
    from tests.helpers import MODEL, VIDEOS

    good = VIDEOS / "bottle-detection.mp4"
    r = cli("run", good, tmp_path / "missing.mp4", "--json", f"{tmp_path}/{{name}}.jsonl",
            "--max-frames", "20", "--model", MODEL)  # fmt: skip
    assert r.code == 1
    assert len(_records(tmp_path / "bottle-detection.jsonl")) == 20
    assert not (tmp_path / "missing.jsonl").exists()
    assert "missing:" in r.err and "1 of 2 sources failed: missing" in r.err
    assert "Traceback" not in r.err


@pytest.mark.shared
def test_the_cli_takes_a_sources_file_with_a_line_for_one_source(tmp_path, cli):
    from tests.helpers import MODEL, VIDEOS

    clip = VIDEOS / "one-by-one-person-detection.mp4"
    cams = tmp_path / "cams.toml"
    cams.write_text(
        f'[[source]]\nurl = "{clip}"\nname = "door"\nline = "door=0.5,0,0.5,1"\n\n'
        f'[[source]]\nurl = "{clip}"\nname = "plain"\n'
    )
    r = cli("run", "--sources", cams, "--json", f"{tmp_path}/", "--track",
            "--max-frames", "60", "--model", MODEL)  # fmt: skip
    assert r.code == 0, r.err
    door, plain = _records(tmp_path / "door.jsonl"), _records(tmp_path / "plain.jsonl")
    assert len(door) == len(plain) == 60
    assert "door" in door[-1]["counts"]["lines"] and "counts" not in plain[-1]
    assert "Sources" in r.err and "door" in r.err and "plain" in r.err
    bad = cli("run", "--sources", cams, "-o", tmp_path / "one.mp4", "--model", MODEL)
    assert bad.code == 2 and "with several sources, give a directory" in bad.err


@pytest.mark.shared
def test_ctrl_c_stops_every_source_and_leaves_each_video_playable(tmp_path):
    from tests.helpers import MODEL, ROOT, VIDEOS, decode_video

    clip = str(VIDEOS / "one-by-one-person-detection.mp4")
    proc = subprocess.Popen(
        [sys.executable, "-m", "annotate", "run", clip, clip, "-o", f"{tmp_path}/",
         "--json", f"{tmp_path}/", "--fps-every", "10", "--model", str(MODEL)],
        stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.stderr is not None
    for text in proc.stderr:
        if "Frame 30:" in text:
            break
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=30) == 130, rest
    assert "Traceback" not in rest and "stopped by a signal" in rest
    for name in ("one-by-one-person-detection", "one-by-one-person-detection-2"):
        records = _records(tmp_path / f"{name}.jsonl")
        images = decode_video(tmp_path / f"{name}.mp4")[2]
        assert 10 <= len(records) < 1394 and len(images) == len(records)


@pytest.mark.shared
def test_on_a_gpu_every_source_feeds_the_one_inference_service(tmp_path, monkeypatch):
    """CUDA asked for (here it falls back to the CPU) with --batch: one service is started
    for both sources, and each source's records are whole."""
    from annotate.detector import Detector
    from annotate.pipeline import RunOptions
    from annotate.pipeline.many import run_many
    from annotate.providers import CPU, Resolution
    from tests.helpers import MODEL, VIDEOS

    served: list[int] = []
    real = Detector.serve

    def serve(self, max_batch, wait_s=None):
        served.append(max_batch)
        return real(self, max_batch, wait_s)

    monkeypatch.setattr(Detector, "serve", serve)
    clip = str(VIDEOS / "bottle-detection.mp4")
    base = RunOptions(clip, MODEL, Resolution(("CUDAExecutionProvider", CPU), "test"),
                      json_path=f"{tmp_path}/", batch=4, max_frames=40)  # fmt: skip
    results = run_many(base, [SourceSpec(clip, "a"), SourceSpec(clip, "b")], cores=4)
    assert served == [4]
    assert [r.summary.frames for r in results if r.summary] == [40, 40]
    assert [len(_records(tmp_path / f"{n}.jsonl")) for n in "ab"] == [40, 40]


@pytest.fixture
def rtsp(request):
    """GStreamer's RTSP server serving the shared bottle clip at /a and /b."""
    import os

    from annotate.testing import rtsp_server
    from tests.helpers import VIDEOS

    why = rtsp_server.available()
    if why:
        if os.environ.get("ANNOTATE_EXPECT_RTSP"):
            pytest.fail(why)
        pytest.skip(why)
    proc, port = rtsp_server.start(VIDEOS / "bottle-detection.mp4", ["a", "b"])
    yield f"rtsp://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.shared
def test_two_rtsp_streams_run_at_once_and_a_missing_one_fails_alone(tmp_path, cli, rtsp):
    """Real streams from a real RTSP server: each stream's records under its own name, and
    a path the server does not have is that source's error only."""
    from tests.helpers import MODEL

    r = cli("run", f"{rtsp}/a", f"{rtsp}/b", f"{rtsp}/nope", "--json", f"{tmp_path}/",
            "--max-frames", "25", "--model", MODEL, "--track")  # fmt: skip
    assert r.code == 1, r.err
    port = rtsp.rsplit(":", 1)[1]
    for path in ("a", "b"):
        name = f"127.0.0.1_{port}_{path}"
        records = _records(tmp_path / f"{name}.jsonl")
        assert len(records) == 25 and {x["source"] for x in records} == {name}
        assert sum(len(x["detections"]) for x in records) > 25  # the bottles
    assert f"127.0.0.1_{port}_nope:" in r.err
    assert f"1 of 3 sources failed: 127.0.0.1_{port}_nope" in r.err
    assert "Traceback" not in r.err


@pytest.mark.shared
def test_a_terminal_shows_one_progress_line_per_source(tmp_path):
    import io

    from rich.console import Console

    from annotate.cli.console import SourcesProgress
    from annotate.pipeline import RunOptions
    from annotate.pipeline.many import run_many
    from annotate.providers import CPU, Resolution
    from tests.helpers import MODEL, VIDEOS

    screen = io.StringIO()
    bars = SourcesProgress(Console(file=screen, force_terminal=True, width=100))
    clip = str(VIDEOS / "bottle-detection.mp4")
    base = RunOptions(clip, MODEL, Resolution((CPU,), "test"), json_path=f"{tmp_path}/",
                      max_frames=30)  # fmt: skip
    run_many(base, [SourceSpec(clip, "left"), SourceSpec(clip, "right")], progress=bars)
    bars.stop()
    shown = screen.getvalue()
    assert "left" in shown and "right" in shown and "30 frames" in shown


@pytest.mark.shared
def test_a_stream_that_drops_for_good_fails_alone_while_the_others_go_on(tmp_path, cli):
    """Two RTSP servers; the second is killed mid-run. Its source tries to reconnect, gives
    up and is reported; the first goes on to its last frame; the run exits 1."""
    import os
    import threading
    import time

    from annotate.testing import rtsp_server
    from tests.helpers import MODEL, VIDEOS

    why = rtsp_server.available()
    if why:
        if os.environ.get("ANNOTATE_EXPECT_RTSP"):
            pytest.fail(why)
        pytest.skip(why)
    clip = VIDEOS / "bottle-detection.mp4"
    steady, steady_port = rtsp_server.start(clip, ["a"])
    doomed, doomed_port = rtsp_server.start(clip, ["live"])
    first = tmp_path / "a.jsonl"

    def kill_once_running() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if first.exists() and len(first.read_text().splitlines()) >= 20:
                break
            time.sleep(0.05)
        doomed.kill()

    killer = threading.Thread(target=kill_once_running)
    killer.start()
    try:
        cams = tmp_path / "cams.toml"
        cams.write_text(
            f'[[source]]\nurl = "rtsp://127.0.0.1:{steady_port}/a"\nname = "a"\n\n'
            f'[[source]]\nurl = "rtsp://127.0.0.1:{doomed_port}/live"\nname = "b"\n'
        )
        r = cli("run", "--sources", cams, "--json", f"{tmp_path}/", "--max-frames", "150",
                "--reconnect", "1", "--model", MODEL)  # fmt: skip
    finally:
        killer.join()
        steady.terminate()
        steady.wait(timeout=10)
    assert r.code == 1, r.err
    assert len(_records(tmp_path / "a.jsonl")) == 150
    assert 1 <= len(_records(tmp_path / "b.jsonl")) < 150  # stale frames dropped
    assert "reconnecting in 0.5 s (attempt 1/1)" in r.err
    assert "gave up after 1 reconnect attempts" in r.err
    assert "1 of 2 sources failed: b" in r.err


def test_output_templates_are_checked_before_the_model_is_fetched(cli, monkeypatch):
    import annotate.cli.console as console

    def no_download(entry):
        raise AssertionError("the model was fetched before the options were checked")

    monkeypatch.setattr(console, "download", no_download)
    r = cli("run", "a.mp4", "b.mp4", "--json", "x.jsonl")
    assert r.code == 2
    assert "--json x.jsonl: with several sources, give a directory" in r.err
    assert "Traceback" not in r.err


@pytest.mark.shared
def test_serve_shows_a_grid_of_every_source_and_a_page_each(tmp_path, monkeypatch, caplog):
    """--serve with two stand-in cameras: the grid page, every source's stats by name, each
    source's own page and picture (a name with a space, quoted in its address), 404 for a
    name that is not there, and a stop from the page that ends both."""
    import logging
    import threading

    import annotate.sources.camera as camera
    from annotate.pipeline import RunOptions
    from annotate.pipeline.many import run_many
    from annotate.providers import CPU, Resolution
    from tests.helpers import MODEL, VIDEOS, FileCamera

    caplog.set_level(logging.INFO, logger="annotate")
    monkeypatch.setattr(
        camera, "open_capture", lambda _i: FileCamera(VIDEOS / "bottle-detection.mp4")
    )
    base = RunOptions("camera:0", MODEL, Resolution((CPU,), "test"), json_path=f"{tmp_path}/",
                      serve=("127.0.0.1", 0), fps_every=10**6)  # fmt: skip
    results: list = []
    specs = [SourceSpec("camera:0", "door"), SourceSpec("camera:1", "yard 2")]
    ended = threading.Event()  # whatever happens below, the run is ended
    worker = threading.Thread(
        target=lambda: results.extend(run_many(base, specs, stop=ended)), daemon=True
    )
    worker.start()
    try:
        check_grid(caplog, results, worker)
    finally:
        ended.set()
        worker.join(timeout=30)


def check_grid(caplog, results, worker) -> None:
    import re
    import time
    import urllib.error
    import urllib.request

    import cv2
    import numpy as np

    deadline = time.monotonic() + 30
    while "Preview at" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    url = re.search(r"Preview at (\S+)", caplog.text).group(1)

    def get(path: str, headers: dict | None = None) -> tuple[bytes, str]:
        request = urllib.request.Request(url + path, headers=headers or {})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read(), response.headers.get("Content-Type", "")

    grid, kind = get("")
    assert kind.startswith("text/html") and b"Stop all" in grid
    while time.monotonic() < deadline:
        sources = json.loads(get("stats")[0])["sources"]
        if set(sources) == {"door", "yard 2"} and all(s["frames"] > 5 for s in sources.values()):
            break
        time.sleep(0.1)
    assert set(sources) == {"door", "yard 2"}
    assert b"annotate - 2 sources - yard 2" in get("source/yard%202/")[0]
    picture, kind = get("source/yard%202/frame.jpg")
    assert kind == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(picture, np.uint8), cv2.IMREAD_COLOR).shape == (360, 640, 3)
    assert json.loads(get("source/door/stats")[0])["frames"] > 5
    for missing in ("source/nope/frame.jpg", "frame.jpg"):
        with pytest.raises(urllib.error.HTTPError) as e:
            get(missing)
        assert e.value.code == 404
    token = re.search(r'"X-Annotate-Token": "([^"]+)"', grid.decode()).group(1)
    stop = urllib.request.Request(url + "stop", method="POST", headers={"X-Annotate-Token": token})
    urllib.request.urlopen(stop, timeout=10).read()
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert [r.summary.stopped for r in results] == ["stopped from the web page"] * 2


@pytest.mark.shared
def test_exports_go_to_a_file_or_folder_per_source(tmp_path, cli):
    from tests.helpers import MODEL, VIDEOS

    out, ds = tmp_path / "out", tmp_path / "ds"
    out.mkdir()
    ds.mkdir()
    bottles, cars = VIDEOS / "bottle-detection.mp4", VIDEOS / "car-detection.mp4"
    r = cli("run", bottles, cars, "--export", f"coco={out}/", "--export",
            f"cvat={out}/{{name}}.xml", "--export", f"yolo={ds}/", "--max-frames", "20",
            "--track", "--model", MODEL)  # fmt: skip
    assert r.code == 0, r.err
    for name in ("bottle-detection", "car-detection"):
        coco = json.loads((out / f"{name}-coco.json").read_text())
        assert len(coco["images"]) == 20
        assert (out / f"{name}.xml").read_text().startswith("<?xml")
        assert (ds / name / "data.yaml").exists()
    assert json.loads((out / "bottle-detection-coco.json").read_text())["annotations"]


@pytest.mark.shared
def test_each_source_keeps_its_own_detection_cadence(tmp_path):
    from annotate.pipeline import RunOptions
    from annotate.pipeline.many import run_many
    from annotate.providers import CPU, Resolution
    from tests.helpers import MODEL, VIDEOS

    clip = str(VIDEOS / "bottle-detection.mp4")
    base = RunOptions(clip, MODEL, Resolution((CPU,), "test"), json_path=f"{tmp_path}/",
                      track=True, max_frames=60)  # fmt: skip
    every, plain = run_many(
        base, [SourceSpec(clip, "every", {"detect_every": 3}), SourceSpec(clip, "plain")]
    )
    assert (every.summary.frames, every.summary.detected) == (60, 20)
    assert (plain.summary.frames, plain.summary.detected) == (60, 60)


@pytest.mark.shared
def test_a_fast_camera_does_not_starve_a_slow_one(tmp_path, monkeypatch):
    """A camera at 30 FPS beside one at 5 FPS, on a machine the fast one alone keeps busy:
    the slow one still gets nearly every frame drawn, soon after capture."""
    import threading

    import annotate.sources.camera as camera
    from annotate.pipeline import RunOptions
    from annotate.pipeline.many import run_many
    from annotate.providers import CPU, Resolution
    from tests.helpers import MODEL, VIDEOS, FileCamera

    def at(rate: float) -> FileCamera:
        device = FileCamera(VIDEOS / "one-by-one-person-detection.mp4")
        device.fps = rate
        return device

    rates = {0: 30.0, 1: 5.0}
    monkeypatch.setattr(camera, "open_capture", lambda i: at(rates[i]))
    stop = threading.Event()
    threading.Timer(8.0, stop.set).start()
    base = RunOptions("camera:0", MODEL, Resolution((CPU,), "test"), json_path=f"{tmp_path}/",
                      fps_every=10**6)  # fmt: skip
    fast, slow = run_many(base, [SourceSpec("camera:0", "fast"), SourceSpec("camera:1", "slow")],
                          stop=stop)  # fmt: skip
    assert fast.summary.frames > 60  # it was served too
    loop_s = slow.summary.wall_s - slow.summary.first_frame_s
    assert (slow.summary.frames - 1) / loop_s > 0.9 * 5.0
    ages = sorted(list(slow.summary.ages)[2:])
    assert ages[len(ages) // 2] < 0.2  # drawn within a fraction of its 200 ms interval


@pytest.mark.shared
def test_a_source_that_does_not_track_keeps_its_own_threshold(tmp_path):
    """One source counts a line (so it tracks, and the shared detector keeps the tracker's
    low boxes); the other does not track, and its records are a plain run's."""
    from annotate.pipeline import RunOptions, run
    from annotate.pipeline.many import run_many
    from annotate.providers import CPU, Resolution
    from tests.helpers import MODEL, VIDEOS

    clip = str(VIDEOS / "one-by-one-person-detection.mp4")
    common = {"model": MODEL, "resolution": Resolution((CPU,), "test"), "max_frames": 40,
              "sequential": True}  # fmt: skip
    alone = tmp_path / "alone.jsonl"
    run(RunOptions(clip, json_path=alone, **common))
    out = tmp_path / "out"
    out.mkdir()
    specs = [SourceSpec(clip, "counted", {"line": "0.5,0,0.5,1"}), SourceSpec(clip, "plain")]
    counted, plain = run_many(RunOptions(clip, json_path=f"{out}/", **common), specs)
    assert counted.summary.tracks is not None and plain.summary.tracks is None
    got = _records(out / "plain.jsonl")
    for r in got:
        r.pop("source")
    expected = [{k: v for k, v in r.items() if k != "source"} for r in _records(alone)]
    assert got == expected
    assert min(d["score"] for r in got for d in r["detections"]) >= 0.3


@pytest.mark.shared
def test_one_source_blurs_faces_and_the_other_sees_none(tmp_path):
    """A sources file's ``blur = "faces"`` for one camera: its records hide every face; the
    other source shares the detector (which finds faces for both) and its records are a
    plain run's, with no face in them."""
    from annotate.pipeline import RunOptions, run
    from annotate.pipeline.many import run_many
    from annotate.providers import CPU, Resolution
    from tests.helpers import MODEL, SHARED

    clip = str(SHARED / "data" / "mot" / "TUD-Stadtmitte" / "TUD-Stadtmitte.mp4")
    common = {"model": MODEL, "resolution": Resolution((CPU,), "test"), "max_frames": 20,
              "sequential": True, "face_model": SHARED / "models" / "centerface.onnx"}  # fmt: skip
    alone = tmp_path / "alone.jsonl"
    run(RunOptions(clip, json_path=alone, **common))
    out = tmp_path / "out"
    out.mkdir()
    specs = [SourceSpec(clip, "private", {"blur": "faces"}), SourceSpec(clip, "plain")]
    private, plain = run_many(RunOptions(clip, json_path=f"{out}/", **common), specs)
    assert private.error is None and plain.error is None
    hidden = _records(out / "private.jsonl")
    assert sum(len(r["hidden"]) for r in hidden) >= 20
    for r in hidden:
        faces = [d["box"] for d in r["detections"] if d["label"] == "face"]
        assert all(box in r["hidden"] for box in faces)
        assert all(d["label"] != "person" or d["box"] not in r["hidden"] for d in r["detections"])
    got = _records(out / "plain.jsonl")
    for r in got:
        r.pop("source")
    assert got == [{k: v for k, v in r.items() if k != "source"} for r in _records(alone)]


@pytest.mark.shared
def test_sources_split_over_processes_give_what_one_process_gives(tmp_path):
    """--processes: three sources over two processes, each its own model. Every source's
    records and tracks are those of the one-process run, named by source, in the order given."""
    from annotate.pipeline import RunOptions
    from annotate.pipeline.groups import run_processes
    from annotate.pipeline.many import run_many
    from tests.helpers import MODEL, VIDEOS

    clips = [str(VIDEOS / n) for n in ("one-by-one-person-detection.mp4", "bottle-detection.mp4")]
    specs = [SourceSpec(clips[0], "a"), SourceSpec(clips[1], "b"), SourceSpec(clips[0], "c")]
    runs = {}
    for way in ("one", "split"):
        out = tmp_path / way
        out.mkdir()
        base = RunOptions(clips[0], model=MODEL, json_path=out, max_frames=45, track=True,
                          sequential=True)  # fmt: skip
        results = run_many(base, specs) if way == "one" else run_processes(base, specs, 2)
        assert [r.name for r in results] == ["a", "b", "c"]
        assert [r.error for r in results] == [None] * 3
        assert all(r.summary is not None and r.summary.frames == 45 for r in results)
        runs[way] = {n: _records(out / f"{n}.jsonl") for n in "abc"}
    assert runs["split"] == runs["one"]
    assert sum(len(r["detections"]) for r in runs["one"]["b"]) > 45  # bottles, every frame


@pytest.mark.shared
def test_a_terminal_shows_a_progress_line_per_source_of_every_process(tmp_path, caplog):
    """--processes: the parent draws each source's line from its worker's reports, and
    prints the workers' log lines itself (written by each worker, they broke the lines)."""
    import functools
    import io
    import logging

    from rich.console import Console

    from annotate.cli.console import SourcesProgress, setup_logging
    from annotate.pipeline import RunOptions
    from annotate.pipeline.groups import run_processes
    from tests.helpers import MODEL, VIDEOS

    screen = io.StringIO()
    bars = SourcesProgress(Console(file=screen, force_terminal=True, width=100))
    clip = str(VIDEOS / "bottle-detection.mp4")
    base = RunOptions(clip, MODEL, json_path=f"{tmp_path}/", max_frames=30)
    specs = [SourceSpec(clip, "left"), SourceSpec(clip, "right")]
    caplog.set_level(logging.INFO, logger="annotate")
    setup = functools.partial(setup_logging, False, False)  # as the CLI's
    run_processes(base, specs, 2, setup=setup, progress=bars)
    bars.stop()
    shown = screen.getvalue()
    assert "left" in shown and "right" in shown and "30 frames" in shown
    assert "left: Frame 30:" in caplog.text and "right: Frame 30:" in caplog.text


@pytest.mark.shared
def test_sigterm_stops_every_process_and_leaves_each_video_playable(tmp_path):
    from tests.helpers import MODEL, ROOT, VIDEOS, decode_video

    clip = str(VIDEOS / "one-by-one-person-detection.mp4")
    proc = subprocess.Popen(
        [sys.executable, "-m", "annotate", "run", clip, clip, clip, "--processes", "2",
         "-o", f"{tmp_path}/", "--json", f"{tmp_path}/", "--fps-every", "10",
         "--model", str(MODEL)],
        stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.stderr is not None
    started = set()
    for text in proc.stderr:
        if "Frame 30:" in text:
            started.add(text.split(":")[0])
        if len(started) == 3:
            break
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 143, rest
    assert "Traceback" not in rest and "stopped by a signal" in rest
    for name in ("one-by-one-person-detection", "-2", "-3"):
        name = name if name[0] != "-" else "one-by-one-person-detection" + name
        records = _records(tmp_path / f"{name}.jsonl")
        images = decode_video(tmp_path / f"{name}.mp4")[2]
        assert 30 <= len(records) < 1394 and len(images) == len(records)


def test_processes_need_several_sources_and_no_shared_page(tmp_path, cli, tiny_model):
    from tests.helpers import make_clip

    clip = make_clip(tmp_path / "c.mp4", 5)
    one = cli("run", clip, "--processes", "2", "--model", tiny_model)
    assert one.code == 2 and "--processes splits several sources" in one.err
    shown = cli("run", clip, clip, "--processes", "2", "--serve", "8799", "--model", tiny_model)
    assert shown.code == 2 and "drop --processes" in shown.err


def test_on_a_gpu_many_sources_are_split_over_processes_that_batch():
    from annotate.pipeline.plan import split_sources

    cuda = "CUDAExecutionProvider"
    assert split_sources(32, 16, cuda, None) == (4, 8)  # the measured best on the H200 box
    assert split_sources(40, 16, cuda, None) == (4, 8)  # no more than one per 4 cores
    assert split_sources(16, 16, cuda, None) == (2, 8)
    assert split_sources(12, 16, cuda, None) == (2, 6)
    assert split_sources(32, 16, cuda, 4) == (4, 4)  # --batch is kept
    assert split_sources(8, 16, cuda, None) == (1, None)  # one process's worth
    assert split_sources(32, 4, cuda, None) == (1, None)  # too few cores to split
    assert split_sources(32, 16, "CPUExecutionProvider", None) == (1, None)  # a model each
    assert split_sources(32, 16, "CoreMLExecutionProvider", None) == (1, None)


def test_the_run_says_how_it_split_the_sources_and_processes_1_keeps_one(
    tmp_path, cli, tiny_model, monkeypatch
):
    """Injected: a CUDA machine of 16 cores (CI has neither). What each way was handed,
    and the line that says so."""
    import annotate.pipeline.groups as groups
    import annotate.pipeline.many as many
    import annotate.pipeline.plan as plan
    import annotate.providers as providers
    from annotate.pipeline.summary import RunSummary
    from annotate.providers import Resolution

    cuda = Resolution(("CUDAExecutionProvider", "CPUExecutionProvider"), "test")
    monkeypatch.setattr(providers, "resolve_here", lambda *_: cuda)
    monkeypatch.setattr(plan, "cpu_cores", lambda: 16)
    handed: list[tuple[str, int, int | None]] = []

    def done(specs):
        return [many.SourceResult(s.url, s.url, RunSummary()) for s in specs]

    def processes(base, specs, count, *args, **kw):
        handed.append(("processes", count, base.batch))
        return done(specs)

    def one(base, specs, *args, **kw):
        handed.append(("one", 1, base.batch))
        return done(specs)

    monkeypatch.setattr(groups, "run_processes", processes)
    monkeypatch.setattr(many, "run_many", one)
    cams = [f"camera:{i}" for i in range(32)]
    split = cli("run", *cams, "--json", f"{tmp_path}/", "--model", tiny_model)
    assert split.code == 0, split.err
    said = "32 sources on CUDAExecutionProvider: 4 processes sharing it, each batching up to 8"
    assert said in split.err
    kept = cli("run", *cams, "--json", f"{tmp_path}/", "--model", tiny_model, "--processes", "1")
    few = cli("run", *cams[:8], "--json", f"{tmp_path}/", "--model", tiny_model)
    assert kept.code == few.code == 0 and "processes sharing" not in kept.err + few.err
    assert handed == [("processes", 4, 8), ("one", 1, None), ("one", 1, None)]
