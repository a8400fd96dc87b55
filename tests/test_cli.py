"""The ``annotate`` command end to end, as a user runs it."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from tests.helpers import IMAGES, MODEL, ROOT, VIDEOS, FileCamera, decode_video, make_clip

M = ("--model", str(MODEL))


@pytest.mark.slow  # the whole 1,189-frame video
@pytest.mark.shared
def test_bottle_video_end_to_end(cli, tmp_path):
    """The issue's acceptance run: H.264, every frame, the source rate and size, bottles."""
    out, dets = tmp_path / "out.mp4", tmp_path / "dets.jsonl"
    source = VIDEOS / "bottle-detection.mp4"
    r = cli("run", source, "-o", out, "--json", dets, *M)
    assert r.code == 0, r.err
    facts, times, images = decode_video(out)
    assert facts["codec"] == "h264" and facts["pix_fmt"] == "yuv420p"
    assert (facts["width"], facts["height"]) == (640, 360)
    assert float(facts["rate"]) == pytest.approx(29.83, abs=0.01)
    assert len(images) == 1189
    assert times[-1] == pytest.approx(1188 * 6 / 179, abs=1e-3)

    records = [json.loads(line) for line in dets.read_text().splitlines()]
    assert len(records) == 1189
    assert [r["frame"] for r in records] == list(range(1189))
    assert records[400]["time"] == pytest.approx(400 * 6 / 179, abs=1e-4)
    assert records[0]["source"] == str(source)
    labels = Counter(d["label"] for rec in records for d in rec["detections"])
    assert labels.most_common(1)[0][0] == "bottle"
    bottles = [d for d in records[400]["detections"] if d["label"] == "bottle"]
    assert len(bottles) == 3 and all(d["score"] > 0.8 for d in bottles)

    # The boxes are drawn: the output differs from the input where a bottle's box edge is.
    x1, y1, _x2, y2 = (round(v) for v in bottles[0]["box"])
    frame = images[400].astype(int)
    with __import__("av").open(str(source)) as c:
        original = next(f for i, f in enumerate(c.decode(video=0)) if i == 400)
    original = original.to_ndarray(format="bgr24").astype(int)
    assert abs(frame[y1:y2, x1 - 1 : x1 + 2] - original[y1:y2, x1 - 1 : x1 + 2]).mean() > 30

    fps_lines = re.findall(
        r"^Frame (\d+): (\d+) detections?, inference [\d.]+ms, "
        r"avg [\d.]+ms \([\d.]+ FPS\)$",
        r.err,
        re.M,
    )
    assert [int(n) for n, _ in fps_lines] == list(range(30, 1189, 30))
    assert "Using execution provider: CPUExecutionProvider (auto: Linux" in r.err
    assert re.search(
        r"^Done: 1189 frames in [\d.]+ s \([\d.]+ FPS; [\d.]+ FPS after the first frame; "
        r"inference [\d.]+ ms mean\)",
        r.err,
        re.M,
    )
    assert f"Wrote {out}, {dets}" in r.err
    assert r.out == ""


@pytest.mark.shared
def test_images_to_a_directory_and_json(cli, tmp_path):
    out, dets = tmp_path / "annotated", tmp_path / "d.jsonl"
    r = cli("run", IMAGES, "-o", out, "--json", dets, *M, "--quiet")
    assert r.code == 0, r.err
    assert r.err == ""  # --quiet
    assert sorted(p.name for p in out.iterdir()) == [
        "astronaut.png",
        "chelsea.png",
        "coffee.png",
        "motorcycle_left.png",
    ]
    records = {
        json.loads(line)["source"].rsplit("/", 1)[-1]: json.loads(line)
        for line in dets.read_text().splitlines()
    }
    best = {k: max(v["detections"], key=lambda d: d["score"])["label"] for k, v in records.items()}
    assert best == {
        "astronaut.png": "person",
        "chelsea.png": "cat",
        "coffee.png": "cup",
        "motorcycle_left.png": "motorcycle",
    }
    assert records["chelsea.png"]["time"] is None
    assert (records["coffee.png"]["width"], records["coffee.png"]["height"]) == (600, 400)


@pytest.mark.shared
def test_photos_with_track_are_not_tracked_and_the_done_line_counts_no_tracks(cli, tmp_path):
    """Each photo stands alone: no track ids across unrelated pictures, and no "0 tracks"
    that reads as if nothing was found."""
    r = cli("run", IMAGES, "--track", "--json", tmp_path / "p.jsonl", *M)
    assert r.code == 0, r.err
    records = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(records) == 4 and all(r_["detections"] for r_ in records)
    assert {d["track_id"] for r_ in records for d in r_["detections"]} == {None}
    (done,) = [line for line in r.err.splitlines() if line.startswith("Done: ")]
    assert done.startswith("Done: 4 frames in ") and "track" not in done, done


@pytest.mark.shared
def test_single_image_to_an_image_file(cli, tmp_path):
    import cv2

    out = tmp_path / "cat.jpg"
    r = cli("run", IMAGES / "chelsea.png", "-o", out, *M)
    assert r.code == 0, r.err
    assert re.search(r"^Done: 1 frame in [\d.]+ s \(", r.err, re.M), r.err
    drawn, original = cv2.imread(str(out)), cv2.imread(str(IMAGES / "chelsea.png"))
    assert drawn.shape == original.shape
    assert abs(drawn.astype(int) - original.astype(int)).mean() > 2


@pytest.mark.shared
def test_json_to_stdout(cli):
    r = cli("run", IMAGES / "coffee.png", "--json", "-", *M, "-q")
    assert r.code == 0
    record = json.loads(r.out)
    assert {d["label"] for d in record["detections"]} == {"cup", "dining table"}


@pytest.mark.shared
def test_max_frames_and_fps_every(cli, tmp_path):
    dets = tmp_path / "d.jsonl"
    r = cli(
        "run",
        VIDEOS / "asl_walk.mkv",
        "--json",
        dets,
        "--max-frames",
        "25",
        "--fps-every",
        "10",
        *M,
    )
    assert r.code == 0, r.err
    assert len(dets.read_text().splitlines()) == 25
    assert re.findall(r"^Frame (\d+):", r.err, re.M) == ["10", "20"]


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda tmp, env: None, "(auto: Linux"),
        (lambda tmp, env: (tmp / "annotate.toml").write_text('provider = "cpu"\n'),
         "(from annotate.toml)"),
        (lambda tmp, env: env.setenv("ANNOTATE_PROVIDER", "CPU"), "(from ANNOTATE_PROVIDER)"),
    ],
)  # fmt: skip
@pytest.mark.shared
def test_start_up_log_names_where_the_provider_came_from(
    cli, tmp_path, monkeypatch, setup, expected
):
    if not sys.platform.startswith("linux"):
        pytest.skip("the auto reason names the OS")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANNOTATE_PROVIDER", raising=False)
    setup(tmp_path, monkeypatch)
    r = cli("run", IMAGES / "chelsea.png", *M)
    assert r.code == 0, r.err
    assert f"Using execution provider: CPUExecutionProvider {expected}" in r.err


@pytest.mark.shared
def test_flag_beats_environment(cli, monkeypatch):
    monkeypatch.setenv("ANNOTATE_PROVIDER", "coreml")  # unavailable here, but the flag wins
    r = cli("run", IMAGES / "chelsea.png", "--provider", "cpu", *M)
    assert r.code == 0, r.err
    assert "Using execution provider: CPUExecutionProvider (from --provider)" in r.err


@pytest.mark.shared
def test_model_from_environment(cli, monkeypatch):
    monkeypatch.setenv("ANNOTATE_MODEL", str(MODEL))
    assert cli("run", IMAGES / "chelsea.png").code == 0


@pytest.mark.shared
def test_default_model_found_in_models_dir(cli, tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "yolox_nano.onnx").symlink_to(MODEL)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANNOTATE_MODEL", raising=False)
    assert cli("run", IMAGES / "chelsea.png").code == 0


@pytest.mark.shared
def test_headless_camera_explains_why_no_window(cli, tmp_path, monkeypatch):
    """`annotate run camera` through the real CLI and CameraSource, with a file-fed device."""
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    import annotate.sources.camera as camera

    monkeypatch.setattr(camera, "open_capture", lambda _i: FileCamera(VIDEOS / "car-detection.mp4"))
    out, dets = tmp_path / "cam.mp4", tmp_path / "cam.jsonl"
    r = cli("run", "camera", "--max-frames", "25", "-o", out, "--json", dets, *M)
    assert r.code == 0, r.err
    assert "Not showing a window: no display" in r.err
    records = [json.loads(line) for line in dets.read_text().splitlines()]
    assert len(records) == 25 and records[0]["source"] == "camera:0"
    # Stamped with the capture clock from the first frame taken: 80 ms per captured frame at
    # 12.5 FPS. ("frame" counts captured frames, so one dropped as stale while a slow first
    # inference ran shows as a gap, and the time still matches it; frames that a slow start
    # let newer ones replace come before the first, which the video starts with too.)
    assert records[-1]["frame"] >= 24 and records[0]["time"] == 0.0
    gone = records[0]["frame"]
    assert records[-1]["time"] == pytest.approx((records[-1]["frame"] - gone) / 12.5, abs=0.3)
    _facts, times, images = decode_video(out)
    assert len(images) == 25 and times[-1] == pytest.approx(records[-1]["time"], abs=0.01)


# Errors: one line, the right exit code, no traceback, inputs untouched.


def _error_cases(tmp):
    text_mp4 = tmp / "notes.mp4"
    text_mp4.write_text("not a video\n")
    not_onnx = tmp / "model.onnx"
    not_onnx.write_text("not a model\n")
    video = VIDEOS / "asl_walk.mkv"
    img = IMAGES / "chelsea.png"
    return [
        (["run", tmp / "nope.mp4", *M], 2, f"Error: input {tmp / 'nope.mp4'} does not exist"),
        (["run", text_mp4, *M], 1, f"Error: {text_mp4} is not a video or image file"),
        (["run", img, "--model", not_onnx], 1, f"Error: cannot load {not_onnx} as an ONNX model"),
        (
            ["run", img, "--model", tmp / "missing.onnx"],
            2,
            f"Error: model file {tmp / 'missing.onnx'} (from --model) does not exist",
        ),
        (["run", img, "--model", tmp], 2, f"Error: model path {tmp} (from --model) is a directory"),
        (
            ["run", img, "--model", "yolo-huge"],
            2,
            "Error: unknown model 'yolo-huge' (from --model)",
        ),
        (
            ["run", img, "--provider", "gpu", *M],
            2,
            "Error: unknown execution provider 'gpu' (from --provider)",
        ),
        (
            ["run", img, "--provider", "coreml", *M],
            2,
            "Error: execution provider 'coreml' (CoreMLExecutionProvider) (from --provider) is not "
            "available in this onnxruntime build; available: CPUExecutionProvider",
        ),
        (["run", video, "-o", video, *M], 2, f"Error: output {video} is the input"),
        (["run", video, "--json", video, *M], 2, f"Error: output {video} is the input"),
        (
            ["run", video, "-o", tmp / "no" / "out.mp4", *M],
            2,
            f"Error: cannot write {tmp / 'no' / 'out.mp4'}: directory {tmp / 'no'} does not exist",
        ),
        (
            ["run", video, "-o", tmp / "out.avi", *M],
            2,
            f"Error: cannot write video to {tmp / 'out.avi'}: unsupported extension '.avi'",
        ),
        (["run", video, "--conf", "1.5", *M], 2, "Error: --conf must be between 0 and 1, got 1.5"),
        (["run", video, "--iou", "-1", *M], 2, "Error: --iou must be between 0 and 1, got -1.0"),
        (["run", video, "--fps-every", "0", *M], 2, "Error: --fps-every must be at least 1, got 0"),
        (
            ["run", video, "--max-frames", "-3", *M],
            2,
            "Error: --max-frames must be at least 1, got -3",
        ),
        (["run", video, "--conf", "high", *M], 2, "Error: Invalid value for '--conf'"),
        (["run", *M], 2, "Error: no source given"),
        (["run", "camera:7", *M, "--no-show"], 1, "Error: cannot open camera 7"),
    ]


@pytest.mark.shared
def test_errors(cli, tmp_path):
    video = VIDEOS / "asl_walk.mkv"
    before = hashlib.sha256(video.read_bytes()).hexdigest()
    for args, code, message in _error_cases(tmp_path):
        r = cli(*args)
        lines = r.err.strip().splitlines()
        assert (r.code, len(lines)) == (code, 1), (args, r.err)
        assert lines[0].startswith(message), (args, lines[0])
        assert "Traceback" not in r.err
    assert hashlib.sha256(video.read_bytes()).hexdigest() == before


@pytest.mark.shared
def test_read_only_output_directory(cli, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    r = cli("run", IMAGES / "chelsea.png", "-o", ro / "x.png", *M)
    assert r.code == 2 and "is not writable" in r.err


@pytest.mark.shared
def test_missing_default_model_says_where_to_put_it(cli, tmp_path, monkeypatch):
    """Offline (here: a mirror that refuses connections), the error says how to place it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANNOTATE_MODEL", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("ANNOTATE_MODEL_MIRROR", "http://127.0.0.1:9")
    r = cli("run", IMAGES / "chelsea.png")
    assert r.code == 1
    assert r.err.strip().splitlines()[-1] == (
        "Error: cannot download yolox-nano from http://127.0.0.1:9/yolox_nano.onnx: Connection "
        f"refused; offline? put yolox_nano.onnx in {tmp_path / 'models'} or "
        f"{tmp_path / 'cache' / 'annotate' / 'models'}, register it with 'annotate models add "
        "FILE', or pass --model PATH"
    )


def _offline_fresh_machine(tmp_path, monkeypatch):
    """No model cached or registered, and a mirror that refuses connections."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANNOTATE_MODEL", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("ANNOTATE_MODEL_MIRROR", "http://127.0.0.1:9")


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--max-frames", "0"], "Error: --max-frames must be at least 1, got 0"),
     (["--conf", "2"], "Error: --conf must be between 0 and 1, got 2.0"),
     (["--trails", "5"], "Error: --trails draws the paths of tracks: add --track"),
     (["--line", "1,2,3"], "Error: --line "),
     (["-o", "out.mp4", "--json", "out.mp4"], "Error: -o and --json name the same file")],
)  # fmt: skip
def test_bad_options_fail_before_the_model_is_fetched(cli, tmp_path, monkeypatch, args, message):
    """Options are checked before any model lookup: on a fresh offline machine a typo is a
    usage error (exit 2), not a network error."""
    _offline_fresh_machine(tmp_path, monkeypatch)
    clip = make_clip(tmp_path / "x.mp4", 2)
    r = cli("run", clip, "-q", *args)
    assert r.code == 2, r.err
    assert r.err.startswith(message) and len(r.err.strip().splitlines()) == 1
    assert "download" not in r.err


def test_providers_with_a_malformed_config_file(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "annotate.toml").write_text('provider = "cpu\n')
    r = cli("providers")
    assert r.code == 2 and r.out == ""
    assert r.err.startswith(f"Error: {tmp_path / 'annotate.toml'} is not valid TOML: ")
    assert len(r.err.strip().splitlines()) == 1


@pytest.mark.shared
def test_bad_config_file(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "annotate.toml").write_text("provider = \n")
    r = cli("run", IMAGES / "chelsea.png", *M)
    assert r.code == 2
    assert r.err == (
        f"Error: {tmp_path / 'annotate.toml'} is not valid TOML: "
        "Invalid value (at line 1, column 12)\n"
    )


def test_providers_command(cli):
    r = cli("providers")
    assert r.code == 0
    assert "CPUExecutionProvider" in r.out and "auto picks this" in r.out
    assert "Precedence: --provider > ANNOTATE_PROVIDER > annotate.toml > auto" in r.out


def _python(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, **kw)


def test_help_loads_no_heavy_modules():
    code = (
        "import sys; from annotate.cli import main\n"
        "for args in (['--help'], ['run', '--help'], ['--version']):\n"
        "    assert main(args) == 0\n"
        "print(sorted(m for m in ('cv2', 'onnxruntime', 'av') if m in sys.modules))"
    )
    r = _python("-c", code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"


def test_python_dash_m():
    r = _python("-m", "annotate", "run", "--help")
    assert r.returncode == 0 and "--provider" in r.stdout and "--json" in r.stdout


def _signal_after(args: list[str], line: str, sig: int) -> tuple[int, str]:
    """Start ``annotate run``, send ``sig`` once stderr shows ``line``; (exit code, rest)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "annotate", "run", *args, *M],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stderr is not None
    for text in proc.stderr:
        if text.startswith(line):
            break
    proc.send_signal(sig)
    started = time.monotonic()
    rest = proc.stderr.read()
    code = proc.wait(timeout=20)
    assert time.monotonic() - started < 5
    return code, rest


@pytest.mark.shared
def test_ctrl_c_leaves_playable_outputs(tmp_path):
    """A real SIGINT mid-run: exit 130, video and JSON Lines hold the same whole frames."""
    out, dets = tmp_path / "out.mp4", tmp_path / "d.jsonl"
    code, rest = _signal_after(
        [
            str(VIDEOS / "one-by-one-person-detection.mp4"),
            "-o",
            str(out),
            "--json",
            str(dets),
            "--fps-every",
            "10",
        ],
        "Frame 40:",
        signal.SIGINT,
    )
    assert code == 130, rest
    assert "Traceback" not in rest and "stopped by SIGINT" in rest
    records = [json.loads(line) for line in dets.read_text().splitlines()]
    _facts, _times, images = decode_video(out)
    assert 40 <= len(records) < 1394
    assert len(images) == len(records)


@pytest.mark.shared
def test_sigterm_exit_code(tmp_path):
    clip = make_clip(tmp_path / "long.mp4", 600, size=(320, 240))
    out = tmp_path / "o.mkv"
    code, rest = _signal_after(
        [str(clip), "-o", str(out), "--fps-every", "5"], "Frame 10:", signal.SIGTERM
    )
    assert code == 143, rest
    assert len(decode_video(out)[2]) >= 10


@pytest.mark.slow
@pytest.mark.parametrize("columns", [80, 200])
@pytest.mark.shared
def test_fps_lines_print_above_the_progress_bar_in_a_terminal(tmp_path, columns):
    """In a real (pseudo-)terminal the bar is live; each rolling FPS line must start a line
    of its own instead of being written after the bar's text."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "annotate",
            "run",
            str(VIDEOS / "bottle-detection.mp4"),
            "--max-frames",
            "95",
            "--json",
            str(tmp_path / "d.jsonl"),
            *M,
        ],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        cwd=ROOT,
        close_fds=True,
        env={**os.environ, "TERM": "xterm-256color", "COLUMNS": str(columns)},
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=60) == 0
    raw = b"".join(chunks).decode("utf-8", "replace")
    assert "━" in raw  # the bar was drawn: this really was a terminal
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw)  # cursor moves and erases
    lines = re.split(r"[\r\n]+", text)
    for n in (30, 60, 90):
        (line,) = [ln for ln in lines if f"Frame {n}:" in ln]
        assert line.startswith(f"Frame {n}: "), line


def test_a_signal_while_starting_is_one_line():
    """Ctrl-C while the modules are still being imported: one line and 130, no traceback."""
    code = (
        "import os, signal, time, annotate._entry as entry\n"
        "for s in (signal.SIGINT, signal.SIGTERM): signal.signal(s, entry._starting)\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "time.sleep(5)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert (r.returncode, r.stderr) == (130, "Error: interrupted while starting\n")


def test_an_interrupted_import_is_an_interruption(cli, monkeypatch, tmp_path, tiny_model):
    """ONNX Runtime turns a KeyboardInterrupt during its import into ImportError; after a
    signal that is reported as the interruption it was."""
    import annotate.cli
    import annotate.providers

    def interrupted_import():
        annotate.cli._received.append(2)
        raise ImportError("initialization failed")

    monkeypatch.setattr(annotate.providers, "available_providers", interrupted_import)
    r = cli("run", make_clip(tmp_path / "c.mp4", 2), "--model", tiny_model, "-q")
    assert (r.code, r.err) == (130, "Error: interrupted\n")


def test_a_swallowed_signal_still_stops_the_run(cli, monkeypatch, tmp_path, tiny_model):
    """A SIGTERM whose exception a library swallowed (seen once in CI: exit 0 after a SIGTERM
    at 0.45 s) is still acted on: the run stops at the next frame with 143 and playable files."""
    import annotate.pipeline.runner as runner
    from annotate.signals import RECEIVED

    emit, seen = runner.Emitter.emit, []

    def emit_then_lose_a_signal(self, *args, **kwargs):
        seen.append(1)
        if len(seen) == 5:
            RECEIVED.append(15)  # what the handler records before its exception is lost
        return emit(self, *args, **kwargs)

    monkeypatch.setattr(runner.Emitter, "emit", emit_then_lose_a_signal)
    out = tmp_path / "o.mp4"
    r = cli("run", make_clip(tmp_path / "c.mp4", 40), "--model", tiny_model, "-o", out, "-q")
    assert r.code == 143, r.err
    assert "SIGTERM" in r.err and "Traceback" not in r.err
    assert len(decode_video(out)[2]) == 4
    assert RECEIVED == []  # cleared for whatever runs next in this process


def test_a_signal_inside_the_import_machinery_is_recorded_not_raised():
    """Raised inside importlib's lock callbacks, the exception would be printed as "Exception
    ignored" with a traceback and lost; there the handler only records it for the run."""
    import sys

    import annotate.cli
    from annotate.errors import Interrupted
    from annotate.signals import RECEIVED

    ns: dict[str, object] = {"sys": sys}
    exec(compile("frame = sys._getframe()", "<frozen importlib._bootstrap>", "exec"), ns)
    try:
        annotate.cli._terminated(15, ns["frame"])  # type: ignore[arg-type]
        assert RECEIVED == [15]
        with pytest.raises(Interrupted):
            annotate.cli._terminated(15, sys._getframe())
    finally:
        RECEIVED.clear()


def test_a_signal_recorded_during_start_up_stops_before_the_model_loads(
    cli, monkeypatch, tmp_path, tiny_model
):
    """A signal recorded (not raised) while modules were importing ends the run before the
    model is loaded, not after it: nothing is written and the exit says which signal."""
    import annotate.pipeline.build as build
    from annotate.signals import RECEIVED

    make_tracker, loaded = build.make_tracker, []

    def tracker_then_signal(options):
        RECEIVED.append(15)
        return make_tracker(options)

    monkeypatch.setattr(build, "make_tracker", tracker_then_signal)
    monkeypatch.setattr(build, "load_detector", lambda *a: loaded.append(1))
    out = tmp_path / "o.mp4"
    r = cli("run", make_clip(tmp_path / "c.mp4", 10), "--model", tiny_model, "-o", out)
    assert r.code == 143 and "SIGTERM" in r.err and "Traceback" not in r.err, r.err
    assert loaded == [] and not out.exists()


def test_handlers_are_installed_except_over_an_ignored_signal():
    """The one rule the entry point, the CLI and each --processes worker install by: what was
    ignored when the program started stays ignored; the rest is replaced and given back."""
    import signal

    from annotate.signals import install

    def mine(*_):
        pass

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        previous = install({signal.SIGINT: mine, signal.SIGTERM: mine})
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is mine
        assert previous == {signal.SIGINT: signal.SIG_IGN, signal.SIGTERM: signal.SIG_DFL}
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)
