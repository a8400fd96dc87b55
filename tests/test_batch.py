"""``annotate batch``: inputs, outputs, manifest, resume, failures, stopping, and Ray."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from annotate.batch import BatchOptions, run_batch
from annotate.batch.inputs import check_outputs, find_jobs
from annotate.errors import OutputPathError, SourceNotFoundError, UsageError
from annotate.pipeline import RunOptions
from annotate.pipeline.plan import plan_jobs
from tests.helpers import MODEL, ROOT, VIDEOS, decode_video, loop_clip, make_clip, probe


def manifest(outdir: Path) -> list[dict]:
    return [json.loads(line) for line in (outdir / "manifest.jsonl").read_text().splitlines()]


def by_name(records: list[dict]) -> dict[str, dict]:
    return {Path(r["input"]).name: r for r in records}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """clips/: two cameras' short clips, a corrupt one, a photo folder and a hidden file."""
    import cv2
    import numpy as np

    root = tmp_path_factory.mktemp("clips")
    (root / "cam1").mkdir()
    (root / "cam2" / "photos").mkdir(parents=True)
    make_clip(root / "cam1" / "a.mp4", 12)
    make_clip(root / "cam1" / "b.mkv", 9, size=(96, 64))
    make_clip(root / "cam2" / "a.mp4", 7, audio=(440,))
    (root / "cam2" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(3000))
    for name in ("p1.png", "p2.jpg"):
        cv2.imwrite(str(root / "cam2" / "photos" / name), np.full((48, 64, 3), 90, np.uint8))
    (root / ".hidden.mp4").write_bytes(b"not looked at")
    (root / "notes.txt").write_text("not a video")
    return root


def test_inputs_are_found_and_placed_under_outdir(folder, tmp_path):
    jobs = find_jobs([str(folder)], tmp_path / "out")
    placed = {str(j.relative): j for j in jobs}
    assert set(placed) == {"cam1/a", "cam1/b", "cam2/a", "cam2/broken", "cam2/photos"}
    photos = placed["cam2/photos"]
    assert photos.image_set and [p.name for p in photos.images] == ["p1.png", "p2.jpg"]
    assert [p.name for p in photos.outputs(tmp_path, True, True)] == [
        "p1.png",
        "p2.jpg",
        "images.jsonl",
    ]
    b = placed["cam1/b"].outputs(tmp_path, True, True)
    assert b == [tmp_path / "cam1/b.mp4", tmp_path / "cam1/b.jsonl"]
    # A glob, a list file (relative to itself) and an explicit file: the same inputs, once.
    listing = tmp_path / "list.txt"
    listing.write_text(f"# cameras\n{os.path.relpath(folder / 'cam1' / 'a.mp4', tmp_path)}\n\n")
    jobs = find_jobs(
        [str(folder / "cam*" / "*.mp4"), f"@{listing}", str(folder / "cam1")], tmp_path / "out"
    )
    # The glob's matches are relative to its folder; the list's entry is the glob's cam1/a.mp4
    # again; the folder adds only b.mkv, relative to itself.
    assert sorted(str(j.relative) for j in jobs) == ["b", "cam1/a", "cam2/a", "cam2/broken"]


def test_outdir_inside_an_input_is_not_read_back(folder, tmp_path):
    inside = folder / "annotated"
    inside.mkdir(exist_ok=True)
    make_clip(inside / "old.mp4", 3)
    try:
        jobs = find_jobs([str(folder)], inside)
        assert all("annotated" not in str(j.relative) for j in jobs)
    finally:
        for p in inside.iterdir():
            p.unlink()
        inside.rmdir()


def test_name_clashes_and_missing_inputs_are_errors_before_work(folder, tmp_path):
    twin = tmp_path / "twin"
    twin.mkdir()
    make_clip(twin / "a.mov", 3)
    jobs = find_jobs([str(folder / "cam1" / "a.mp4"), str(twin / "a.mov")], tmp_path / "o")
    with pytest.raises(UsageError, match=r"would both write .*a\.mp4"):
        check_outputs(jobs, tmp_path / "o", True, False)
    with pytest.raises(SourceNotFoundError, match="does not exist"):
        find_jobs([str(tmp_path / "nope.mp4")], tmp_path / "o")
    with pytest.raises(SourceNotFoundError, match="no files match"):
        find_jobs([str(tmp_path / "*.avi")], tmp_path / "o")
    with pytest.raises(SourceNotFoundError, match="list file"):
        find_jobs([f"@{tmp_path / 'missing.txt'}"], tmp_path / "o")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceNotFoundError, match="no videos or images found"):
        find_jobs([str(empty)], tmp_path / "o")
    # Writing into the input's own folder would replace it: refused.
    jobs = find_jobs([str(twin / "a.mov")], twin)
    check_outputs(jobs, twin, True, False)  # a.mp4 beside a.mov is fine
    make_clip(twin / "b.mp4", 3)
    with pytest.raises(OutputPathError, match="would overwrite the input"):
        check_outputs(find_jobs([str(twin / "b.mp4")], twin), twin, True, False)


def test_jobs_plan_never_oversubscribes():
    for cores in range(1, 65):
        jobs, each = plan_jobs(cores, None)
        assert jobs >= 1 and each >= 1 and jobs * each <= max(cores, 1)
    assert plan_jobs(16, 3) == (3, 5)
    assert plan_jobs(2, 8) == (8, 1)


def test_batch_writes_every_output_and_a_manifest(cli, folder, tiny_model, tmp_path):
    out = tmp_path / "out"
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    r = cli("batch", folder, "-o", out, "--json", "-m", tiny_model, "--jobs", "2")
    assert r.code == 1, r.err  # the broken clip failed; the others finished
    records = by_name(manifest(out))
    assert set(records) == {"a.mp4", "b.mkv", "broken.mp4", "photos"}
    failed = records.pop("broken.mp4")
    assert failed["status"] == "failed" and failed["error"] and "\n" not in failed["error"]
    assert failed["outputs"] == [] and not list(out.glob("cam2/broken*"))
    assert "broken.mp4 failed" in r.err and "Traceback" not in r.err
    for record in records.values():
        assert record["status"] == "done", record
        assert record["settings"]["json"] and record["settings_id"]
        assert record["identity"]["size"] > 0 and record["identity"]["mtime"]
        assert {"frames", "seconds", "fps", "error"} <= set(record)
    assert records["photos"]["identity"]["images"] == 2
    for name, frames in (("cam1/a", 12), ("cam1/b", 9), ("cam2/a", 7)):
        facts, _, images = decode_video(out / f"{name}.mp4")
        assert facts["codec"] == "h264" and len(images) == frames
        lines = (out / f"{name}.jsonl").read_text().splitlines()
        assert len(lines) == frames and json.loads(lines[0])["detections"][0]["label"] == "person"
    assert [s["type"] for s in probe(out / "cam2/a.mp4")["streams"]] == ["video", "audio"]
    assert sorted(p.name for p in (out / "cam2/photos").iterdir()) == [
        "images.jsonl",
        "p1.png",
        "p2.jpg",
    ]
    assert not [p for p in out.rglob(".*")]  # no partial file left anywhere
    assert {p: p.stat().st_mtime_ns for p in before} == before  # inputs untouched
    assert r.out == "" and "Batch of 5 inputs: 2 worker processes" in r.err


def test_resume_skips_what_is_done_and_redoes_what_changed(cli, folder, tiny_model, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.mp4", "b.mkv"):
        (src / name).write_bytes((folder / "cam1" / name).read_bytes())
    out = tmp_path / "out"
    args = ["batch", src, "-o", out, "-m", tiny_model]
    assert cli(*args).code == 0
    written = (out / "manifest.jsonl").read_bytes()
    stamps = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    r = cli(*args, "--resume")
    assert r.code == 0 and "Nothing to do: all 2 inputs are done" in r.err
    assert (out / "manifest.jsonl").read_bytes() == written  # nothing rewritten
    assert {p: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    # An edited input and a deleted output are redone; the rest is not touched.
    os.utime(src / "a.mp4", ns=(time.time_ns(), time.time_ns()))
    r = cli(*args, "--resume")
    assert r.code == 0 and "Resuming: 1 input done before, 1 to do" in r.err
    assert [Path(x["input"]).name for x in manifest(out)[2:]] == ["a.mp4"]
    (out / "b.mp4").unlink()
    assert cli(*args, "--resume").code == 0
    assert [Path(x["input"]).name for x in manifest(out)[3:]] == ["b.mkv"]
    # Other settings: everything is redone.
    assert cli(*args, "--resume", "--conf", "0.5").code == 0
    assert len(manifest(out)) == 6
    assert cli(*args, "--resume", "--conf", "0.5", "--canvas", "square").code == 0
    assert len(manifest(out)) == 8  # the canvas changes what is found


def test_a_dying_worker_fails_only_its_own_input(folder, tiny_model, tmp_path):
    """A worker process that dies (as a decoder segfault would kill it) takes down no other
    video: the jobs it might have had are retried alone, and only the culprit fails."""
    from annotate.batch import local
    from annotate.batch.job import Batch
    from tests import batch_helpers

    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"ok{i}.mp4").write_bytes((folder / "cam1" / "a.mp4").read_bytes())
    (src / "poison.mp4").write_bytes((folder / "cam1" / "a.mp4").read_bytes())
    options = RunOptions(source="", model=tiny_model).resolved()
    jobs = find_jobs([str(src)], tmp_path / "out")
    pool = local.LocalPool(
        Batch(options, tmp_path / "out", True, False, "x", "sha"), 2, batch_helpers.crash_on_poison
    )
    (tmp_path / "out").mkdir()
    records = {Path(e.record.input).name: e.record for e in pool.run(jobs) if hasattr(e, "record")}
    statuses = {n: r.status for n, r in records.items()}
    assert statuses == {
        "ok0.mp4": "done",
        "ok1.mp4": "done",
        "ok2.mp4": "done",
        "poison.mp4": "failed",
    }
    assert "worker process died" in records["poison.mp4"].error
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ok0.mp4", "ok1.mp4", "ok2.mp4"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--jobs", "0"], 2, "--jobs must be at least 1"),
        (["--no-video"], 2, "nothing to write"),
        (["--conf", "7"], 2, "--conf must be between 0 and 1"),
        (["--codec", "h266"], 2, "unknown codec"),
        # Checked against the model's classes before any input is run (#33).
        (["--blur", "dragon"], 2, "unknown class 'dragon' in --blur"),
        (["--classes", "persn"], 2, "unknown class 'persn' in --classes; did you mean person?"),
        (["--blur", "person", "--classes", "car"], 2, "--blur person: --classes car leaves it"),
        (["--blur", ""], 2, "--blur names no class"),
        (["--blur", "--detect-every", "2"], 2, "or add --accept-blur-gaps"),
        (["--blur-style", "solid"], 2, "--blur-style sets how --blur hides: add --blur"),
        (["--ray", ""], 2, "--ray takes local, auto, ray://HOST:PORT or HOST:PORT; got ''"),
    ],
)
def test_bad_options_are_one_line(cli, folder, tiny_model, tmp_path, args, code, message):
    r = cli("batch", folder / "cam1", "-o", tmp_path / "o", "-m", tiny_model, "-q", *args)
    assert r.code == code and message in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert not (tmp_path / "o").exists()


def test_bad_inputs_are_one_line(cli, folder, tiny_model, tmp_path):
    (tmp_path / "file").write_text("x")
    for args, message in (
        ([tmp_path / "nothing-here"], "does not exist"),
        ([tmp_path / "file", "-o", tmp_path / "file"], "is a file; give a directory"),
        (["", "-o", tmp_path / "o"], "an INPUT is empty"),  # not the current directory
    ):
        if "-o" not in args:
            args = [*args, "-o", tmp_path / "o"]
        r = cli("batch", *args, "-m", tiny_model)
        assert r.code == 2 and message in r.err and "Traceback" not in r.err, r.err
    r = cli("batch", "-o", tmp_path / "o")
    assert r.code == 2 and "Missing argument" in r.err
    assert not (tmp_path / "o").exists()


def test_the_manifest_cannot_be_turned_on_an_input(cli, folder, tiny_model, tmp_path):
    """A manifest.jsonl linked to an input (or any other file) is refused, the input intact."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.mp4", "b.mkv"):
        (src / name).write_bytes((folder / "cam1" / name).read_bytes())
    before = (src / "a.mp4").read_bytes()
    out = tmp_path / "o"
    out.mkdir()
    (out / "manifest.jsonl").symlink_to(src / "a.mp4")
    r = cli("batch", src / "a.mp4", src / "b.mkv", "-o", out, "-m", tiny_model)
    assert r.code == 2 and r.err.strip() == (
        f"Error: {out / 'manifest.jsonl'} is a symbolic link (to {src / 'a.mp4'}); the batch "
        "appends its records there: remove the link"
    )
    assert (src / "a.mp4").read_bytes() == before and sorted(os.listdir(out)) == ["manifest.jsonl"]
    (out / "manifest.jsonl").unlink()
    (out / "manifest.jsonl").hardlink_to(src / "a.mp4")
    r = cli("batch", src / "a.mp4", src / "b.mkv", "-o", out, "-m", tiny_model)
    assert r.code == 2 and "is the input" in r.err and (src / "a.mp4").read_bytes() == before


@pytest.mark.parametrize("damage", ["cut", "random"])
def test_resume_survives_a_damaged_manifest(cli, folder, tiny_model, tmp_path, damage):
    """A manifest cut mid-line or overwritten with random bytes: --resume warns, redoes what
    it cannot read, and every record it writes is a line of its own."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.mp4", "b.mkv"):
        (src / name).write_bytes((folder / "cam1" / name).read_bytes())
    out = tmp_path / "out"
    args = ["batch", src, "-o", out, "-m", tiny_model, "--resume"]
    assert cli(*args).code == 0
    path = out / "manifest.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    if damage == "cut":
        path.write_bytes(lines[0] + lines[1][: len(lines[1]) // 2])  # the second record torn
    else:
        path.write_bytes(os.urandom(3000).replace(b"\n", b" "))
    r = cli(*args)
    assert r.code == 0 and "Traceback" not in r.err, r.err
    assert re.search(
        r"manifest.jsonl: skipped \d+ lines? that (is not a record|are not records) "
        r"\(cut short or damaged\)",
        r.err,
    ), r.err
    redone = 1 if damage == "cut" else 2
    assert f"Batch of {redone} input" in r.err
    if damage == "cut":
        assert "ended in a line cut short; the next record starts a new line" in r.err
    records = path.read_bytes().splitlines()[-redone:]
    assert [json.loads(line)["status"] for line in records] == ["done"] * redone
    r = cli(*args)  # the torn line stays, but everything is done now
    assert r.code == 0 and "Nothing to do: all 2 inputs are done" in r.err


def test_ray_without_the_extra_names_it(cli, folder, tiny_model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ImportError
    r = cli("batch", folder / "cam1", "-o", tmp_path / "o", "-m", tiny_model, "--ray")
    assert r.code == 2 and "pip install 'annotate-video[ray]'" in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def _batch_process(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "annotate", "batch", *args],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _only_whole_outputs(out: Path) -> list[str]:
    """After a stop: OUTDIR holds the manifest and the outputs of the jobs it says are done,
    nothing else (no partial file); the jobs' statuses, sorted."""
    records = manifest(out)
    finished = [Path(o).name for r in records if r["status"] == "done" for o in r["outputs"]]
    assert sorted(p.name for p in out.iterdir()) == sorted(["manifest.jsonl", *finished])
    return sorted(r["status"] for r in records)


def _long_clips(src: Path, tmp_path: Path, count: int) -> None:
    """``count`` copies of a 6,000-frame clip: long enough that no job can finish before
    the test stops it, even on a fast machine (1,500 frames once did, 2026-12-04 CI)."""
    make_clip(tmp_path / "short.mp4", 500, size=(320, 240))
    loop_clip(tmp_path / "short.mp4", src / "long0.mp4", 12)
    for i in range(1, count):
        (src / f"long{i}.mp4").write_bytes((src / "long0.mp4").read_bytes())


def test_ctrl_c_stops_every_worker_and_leaves_no_half_file(tiny_model, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _long_clips(src, tmp_path, 3)
    out = tmp_path / "out"
    proc = _batch_process(
        [str(src), "-o", str(out), "-m", str(tiny_model), "--json", "--jobs", "2"]
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(out.glob(".annotate-partial-*.mp4"))) < 2:
        time.sleep(0.1)
    time.sleep(0.5)
    workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
    children = [int(pid) for pid in workers.stdout.split()]
    assert len(children) >= 2  # the two worker processes (and the resource tracker)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    stopped = time.monotonic()
    err = proc.communicate(timeout=30)[1]
    assert proc.returncode == 130, err
    assert time.monotonic() - stopped < 6
    assert "Traceback" not in err and "stopped by SIGINT" in err
    # Usually two in flight ("failed") and one not started ("skipped"); a job that reached
    # its last frame before the stop is "done", whole.
    statuses = _only_whole_outputs(out)
    assert "failed" in statuses and statuses.count("done") < 3, statuses
    deadline = time.monotonic() + 3  # every worker process has ended (and been reaped)
    while time.monotonic() < deadline and any(_alive(pid) for pid in children):
        time.sleep(0.1)
    assert not [pid for pid in children if _alive(pid)]


def test_sigterm_to_the_group_leaves_no_half_file(tiny_model, tmp_path):
    """``kill -TERM -PGID`` (a service manager, a container stop) reaches the workers too:
    they leave the stop to the driver, which waits for them to clean up."""
    src = tmp_path / "src"
    src.mkdir()
    _long_clips(src, tmp_path, 2)
    out = tmp_path / "out"
    proc = _batch_process([str(src), "-o", str(out), "-m", str(tiny_model), "--jobs", "2"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(out.glob(".annotate-partial-*.mp4"))) < 2:
        time.sleep(0.1)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGTERM)
    err = proc.communicate(timeout=30)[1]
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "stopped by SIGTERM" in err
    assert sorted(p.name for p in out.iterdir()) == ["manifest.jsonl"]
    assert "failed" in _only_whole_outputs(out)


def test_a_killed_batch_leaves_no_half_file_and_resume_finishes_it(tiny_model, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    make_clip(src / "short.mp4", 5)
    make_clip(src / "zlong.mp4", 2000, size=(320, 240))
    out = tmp_path / "out"
    args = [str(src), "-o", str(out), "-m", str(tiny_model), "--jobs", "2"]
    proc = _batch_process(args)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (
        list(out.glob(".annotate-partial-zlong*")) and (out / "short.mp4").exists()
    ):
        time.sleep(0.05)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    finals = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert finals == ["manifest.jsonl", "short.mp4"]  # no half zlong.mp4 under a final name
    assert [r["status"] for r in manifest(out)] == ["done"]
    proc = _batch_process([*args, "--resume"])
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["manifest.jsonl", "short.mp4", "zlong.mp4"]
    assert len(decode_video(out / "zlong.mp4")[2]) == 2000


# --- Ray: a local Ray inside the suite --------------------------------------------------------

ray_needed = pytest.mark.skipif(
    not os.environ.get("ANNOTATE_EXPECT_RAY")
    and __import__("importlib").util.find_spec("ray") is None,
    reason="Ray is not installed (pip install 'annotate-video[ray]')",
)


@pytest.fixture(scope="module")
def ray_session():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@ray_needed
def test_ray_gives_the_same_detections_manifest_and_resume(
    folder, tiny_model, tmp_path, ray_session
):
    base = RunOptions(source="", model=tiny_model, track=True)
    local_out, ray_out = tmp_path / "local", tmp_path / "ray"
    here = run_batch(BatchOptions([str(folder)], local_out, base, jobs=2, json=True))
    there = run_batch(BatchOptions([str(folder)], ray_out, base, json=True, ray="auto"))
    assert there.plan.startswith("Ray (auto: 1 node, 2 CPUs)")
    statuses = {Path(r.input).name: r.status for r in there.records}
    assert statuses == {Path(r.input).name: r.status for r in here.records}
    assert statuses["broken.mp4"] == "failed" and statuses["a.mp4"] == "done"
    for name in ("cam1/a.jsonl", "cam1/b.jsonl", "cam2/a.jsonl", "cam2/photos/images.jsonl"):
        assert (ray_out / name).read_text() == (local_out / name).read_text()
    for name in ("cam1/a.mp4", "cam2/a.mp4"):
        assert len(decode_video(ray_out / name)[2]) == len(decode_video(local_out / name)[2])
    assert {r["settings_id"] for r in manifest(ray_out)} == {r.settings_id for r in here.records}
    written = (ray_out / "manifest.jsonl").read_bytes()
    again = run_batch(
        BatchOptions([str(folder)], ray_out, base, json=True, ray="auto", resume=True)
    )
    assert again.resumed == 4 and [r.status for r in again.records] == ["failed"]
    assert (ray_out / "manifest.jsonl").read_bytes().startswith(written)


@ray_needed
def test_ray_from_the_command_line_starts_a_local_ray(folder, tiny_model, tmp_path):
    proc = _batch_process(
        [str(folder / "cam1"), "-o", str(tmp_path / "o"), "-m", str(tiny_model), "--ray"]
    )
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 0, err
    assert "Ray (local: 1 node" in err
    assert [r["status"] for r in manifest(tmp_path / "o")] == ["done", "done"]


@ray_needed
def test_an_unreachable_ray_cluster_is_one_line_before_any_work(folder, tiny_model, tmp_path):
    proc = _batch_process(
        [
            str(folder / "cam1"),
            "-o",
            str(tmp_path / "o"),
            "-m",
            str(tiny_model),
            "--ray",
            "ray://127.0.0.1:9",
        ]
    )
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 1, err
    assert "cannot reach the Ray cluster at ray://127.0.0.1:9: Connection refused" in err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


@ray_needed
@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_a_listener_that_is_not_ray_is_one_line_within_seconds(
    folder, tiny_model, tmp_path, scheme
):
    """Something else answering on the port (a web server, say): Ray would retry for ever."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    stop = threading.Event()

    def answer() -> None:  # an HTTP/1 server's reply to whatever arrives
        server.settimeout(0.2)
        held = []
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            held.append(conn)
        for conn in held:
            conn.close()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        proc = _batch_process(
            [
                str(folder / "cam1"),
                "-o",
                str(tmp_path / "o"),
                "-m",
                str(tiny_model),
                "--ray",
                f"{scheme}127.0.0.1:{port}",
            ]
        )
        err = proc.communicate(timeout=60)[1]
        took = time.monotonic() - started
    finally:
        stop.set()
        thread.join()
        server.close()
    assert proc.returncode == 1, err
    assert err.strip() == (
        f"Error: {scheme}127.0.0.1:{port} answers, but not as Ray does (no gRPC handshake in "
        "5 s); give the address of a Ray head (HOST:6379) or its client server "
        "(ray://HOST:10001)"
    )
    assert took < 12 and not (tmp_path / "o").exists()


# --- On the shared footage: the same detections as `annotate run` -----------------------------


@pytest.mark.slow
@pytest.mark.shared
def test_batch_detects_exactly_what_run_does(cli, tmp_path):
    out = tmp_path / "batch"
    videos = [VIDEOS / "car-detection.mp4", VIDEOS / "bottle-detection.mp4"]
    r = cli("batch", *videos, "-o", out, "--json", "-m", MODEL, "--track", "--max-frames", "120")
    assert r.code == 0, r.err
    found = 0
    for video in videos:
        single = tmp_path / f"{video.stem}.jsonl"
        assert (
            cli("run", video, "--json", single, "-m", MODEL, "--track", "--max-frames", "120").code
            == 0
        )
        ours = [json.loads(x) for x in (out / f"{video.stem}.jsonl").read_text().splitlines()]
        theirs = [json.loads(x) for x in single.read_text().splitlines()]
        assert [x["detections"] for x in ours] == [x["detections"] for x in theirs]
        assert len(ours) == 120
        found += sum(len(x["detections"]) for x in ours)
    assert found > 300  # three bottles a frame, and some cars
    # The car clip's audio track is carried, as `run` does.
    assert [s["type"] for s in probe(out / "car-detection.mp4")["streams"]] == ["video", "audio"]
