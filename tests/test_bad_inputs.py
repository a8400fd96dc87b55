"""Every way a user can hand annotate something wrong, in one table, through the real CLI:
the exact one-line message, the exit code (2 usage, 1 runtime), no traceback, inputs untouched.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from annotate.testing.models import constant_model
from tests.helpers import IMAGES, MODEL, VIDEOS

VIDEO = VIDEOS / "asl_walk.mkv"
M = ["--model", str(MODEL)]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _audio_only(path: Path) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate = 48000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


def _cases(tmp: Path) -> list[tuple[str, list, int, str]]:
    """(case, args, exit code, the whole stderr line)."""
    (tmp / "empty_dir").mkdir()
    (tmp / "notes.txt").write_text("hi")
    zero = _write(tmp / "zero.mp4", b"")
    text = _write(tmp / "text.mp4", b"this is not a video\n")
    data = (VIDEOS / "bottle-detection.mp4").read_bytes()
    no_moov = _write(tmp / "no_moov.mp4", data[: len(data) // 2])
    bad_png = _write(tmp / "bad.png", b"\x89PNG\r\n\x1a\nnot really")
    audio = _audio_only(tmp / "audio.m4a")
    not_onnx = _write(tmp / "model.onnx", b"not a model")
    wrong = constant_model(tmp / "classifier.onnx", np.zeros((1, 1000), np.float32),
                           [1, 3, 224, 224])  # fmt: skip
    labels = tmp / "labels.txt"
    labels.write_text("a\nb\n")
    bad_toml = tmp / "bad_toml"
    bad_toml.mkdir()
    (bad_toml / "annotate.toml").write_text('provider = "cpu\n')
    odd_key = tmp / "odd_key"
    odd_key.mkdir()
    (odd_key / "annotate.toml").write_text('provder = "cpu"\n')
    not_video = "is not a video or image file"
    hard = tmp / "hard_link.mkv"
    hard.hardlink_to(_write(tmp / "original.mkv", VIDEO.read_bytes()))
    photos = tmp / "photos"
    photos.mkdir()
    for name in ("a.png", "b.png"):
        _write(photos / name, (IMAGES / "coffee.png").read_bytes())
    a_dir = tmp / "a_dir.mp4"
    a_dir.mkdir()
    latin1 = _write(tmp / "latin1.txt", "caf\xe9\n".encode("latin-1"))
    latin1_toml = tmp / "latin1_toml"
    latin1_toml.mkdir()
    _write(latin1_toml / "annotate.toml", 'model = "caf\xe9"\n'.encode("latin-1"))
    long_name = tmp / ("x" * 300 + ".mp4")
    anchors = 8 * 8 + 4 * 4 + 2 * 2
    out = np.zeros((1, anchors, 85), np.float32)
    negative = constant_model(tmp / "negative.onnx", out, [1, 3, "h", "w"], {"imgsz": "[-64, 64]"})
    huge = constant_model(tmp / "huge.onnx", out, [1, 3, "h", "w"], {"imgsz": "99999"})
    dangling = tmp / "dangling.mp4"
    dangling.symlink_to(tmp / "gone.mp4")
    cams = _write(tmp / "cams.toml", f'[[source]]\nurl = "{VIDEO}"\n'.encode())
    return [
        ("missing file", [tmp / "nope.mp4", *M], 2, f"input {tmp / 'nope.mp4'} does not exist"),
        ("directory without images", [tmp / "empty_dir", *M], 2,
         f"directory {tmp / 'empty_dir'} has no image files"),
        ("zero-byte file", [zero, *M], 1, f"{zero} {not_video} (Invalid data found when "
                                          "processing input)"),
        ("text file named .mp4", [text, *M], 1,
         f"{text} {not_video} (Invalid data found when processing input)"),
        ("truncated MP4, moov missing", [no_moov, *M], 1,
         f"{no_moov} {not_video} (Invalid data found when processing input)"),
        ("image with a bad header", [bad_png, *M], 1,
         f"{bad_png} is not a readable image (empty or damaged file)"),
        ("no video stream", [audio, *M], 1, f"{audio} has no video stream"),
        ("a sources file as the input", [cams, *M], 2,
         f"{cams} is a TOML file, not a video; to run the sources it lists, use --sources "
         f"{cams}"),
        ("unknown camera index", ["camera:7", "--no-show", *M], 1,
         "cannot open camera 7: no camera at that index, or another program is using it "
         "(try camera:1, or check permissions)"),
        ("unreachable URL", ["http://127.0.0.1:9/cam.ts", *M], 1,
         "cannot open http://127.0.0.1:9/cam.ts: Connection refused"),
        ("model path is a directory", [VIDEO, "--model", tmp], 2,
         f"model path {tmp} (from --model) is a directory; give the .onnx file"),
        ("non-ONNX model", [VIDEO, "--model", not_onnx], 1,
         f"cannot load {not_onnx} as an ONNX model: Protobuf parsing failed."),
        ("ONNX model with the wrong output shape", [VIDEO, "--model", wrong], 1,
         f"{wrong}: output shape [1, 1000] is not a detector layout (YOLOX [1, N, 5+C], "
         "YOLOv5 [1, 3N, 5+C] or YOLOv8/11 [1, 4+C, N])"),
        ("unknown provider", [VIDEO, "--provider", "gpu", *M], 2,
         "unknown execution provider 'gpu' (from --provider); use one of: coreml, cpu, cuda, "
         "directml, migraphx, openvino, qnn, rocm, tensorrt, xnnpack, auto, or a full ONNX "
         "Runtime name"),
        ("unavailable provider", [VIDEO, "--provider", "coreml", *M], 2,
         "execution provider 'coreml' (CoreMLExecutionProvider) (from --provider) is not "
         "available in this onnxruntime build; available: CPUExecutionProvider"),
        ("-o equal to the input", [VIDEO, "-o", VIDEO, *M], 2,
         f"output {VIDEO} is the input; choose another file name"),
        ("-o a hard link of the input", [tmp / "original.mkv", "-o", hard, *M], 2,
         f"output {hard} is the input; choose another file name"),
        ("image folder into itself", [photos, "-o", photos, *M], 2,
         f"-o {photos} would overwrite the input image {photos / 'a.png'}; choose another "
         "directory"),
        ("image glob into its folder", [f"{photos}/*.png", "-o", photos, *M], 2,
         f"-o {photos} would overwrite the input image {photos / 'a.png'}; choose another "
         "directory"),
        ("-o an existing directory", [VIDEO, "-o", a_dir, *M], 2,
         f"cannot write {a_dir}: it is a directory"),
        ("--json on a full device", [VIDEO, "--json", "/dev/full", "--max-frames", "3", *M], 1,
         "cannot write /dev/full: No space left on device; it is incomplete (records for "
         "frames before the error)"),
        ("output name too long", [VIDEO, "-o", long_name, *M], 2,
         f"cannot write {str(long_name)[:60]}…{str(long_name)[-16:]}: File name too long"),
        ("image type OpenCV cannot write", [IMAGES / "coffee.png", "-o", tmp / "x.exr", *M], 2,
         f"cannot write {tmp / 'x.exr'}: OpenCV cannot write colour images as '.exr'; use .png "
         "or .jpg"),
        ("image type that cannot hold colour", [IMAGES / "coffee.png", "-o", tmp / "x.pbm", *M],
         2, f"cannot write {tmp / 'x.pbm'}: OpenCV cannot write colour images as '.pbm'; use "
         ".png or .jpg"),
        ("--start inf", [VIDEO, "--start", "inf", *M], 2,
         "--start takes seconds or [HH:]MM:SS, got 'inf'"),
        ("--start nan", [VIDEO, "--start", "nan", *M], 2,
         "--start takes seconds or [HH:]MM:SS, got 'nan'"),
        ("labels file not UTF-8", [VIDEO, "--labels", latin1, *M], 2,
         f"labels file {latin1} is not UTF-8 text (one name per line)"),
        ("config file not UTF-8", ["@cwd", latin1_toml, VIDEO, *M], 2,
         f"{latin1_toml / 'annotate.toml'} is not valid TOML: it is not UTF-8 text"),
        ("negative imgsz metadata", [VIDEO, "--model", negative], 1,
         f"{negative}: its imgsz metadata '[-64, 64]' is not an input size (two multiples of "
         "32 from 32 to 4096)"),
        ("huge imgsz metadata", [VIDEO, "--model", huge], 1,
         f"{huge}: its imgsz metadata '99999' is not an input size (two multiples of 32 from "
         "32 to 4096)"),
        ("-o in a missing directory", [VIDEO, "-o", tmp / "no" / "o.mp4", *M], 2,
         f"cannot write {tmp / 'no' / 'o.mp4'}: directory {tmp / 'no'} does not exist"),
        ("-o in a read-only directory", [VIDEO, "-o", "/proc/sys/o.mp4", *M], 2,
         "cannot write /proc/sys/o.mp4: directory /proc/sys is not writable"),
        ("unsupported output extension", [VIDEO, "-o", tmp / "o.avi", *M], 2,
         f"cannot write video to {tmp / 'o.avi'}: unsupported extension '.avi'; use one of "
         ".mp4, .m4v, .mov, .mkv, .webm"),
        ("--conf 1.5", [VIDEO, "--conf", "1.5", *M], 2, "--conf must be between 0 and 1, got 1.5"),
        ("--iou -1", [VIDEO, "--iou", "-1", *M], 2, "--iou must be between 0 and 1, got -1.0"),
        ("--fps-every 0", [VIDEO, "--fps-every", "0", *M], 2,
         "--fps-every must be at least 1, got 0"),
        ("--max-frames -3", [VIDEO, "--max-frames", "-3", *M], 2,
         "--max-frames must be at least 1, got -3"),
        ("unknown class name", [VIDEO, "--classes", "persn", *M], 2,
         "unknown class 'persn' in --classes; did you mean person?"),
        ("labels count mismatch", [VIDEO, "--labels", labels, *M], 2,
         f"labels file {labels} has 2 names but {MODEL} has 80 classes"),
        ("config file with a syntax error", ["@cwd", bad_toml, VIDEO, *M], 2,
         f"{bad_toml / 'annotate.toml'} is not valid TOML: Illegal character '\\n' "
         "(at line 1, column 16)"),
        ("config file with an unknown key", ["@cwd", odd_key, VIDEO, *M], 2,
         f"{odd_key / 'annotate.toml'}: unknown key 'provder'; known keys: provider, model, "
         "conf, iou, fps_every"),
        ("unknown model name", [VIDEO, "--model", "yolo-huge"], 2,
         "unknown model 'yolo-huge' (from --model); give a path to an .onnx file or one of: "
         "yolox-l, yolox-m, yolox-nano, yolox-s, yolox-tiny, yolox-x"),
        ("start past the end", [VIDEO, "--start", "99", *M], 1,
         f"{VIDEO}: no video frame could be decoded after 99 s"),
        ("bad --serve", [VIDEO, "--serve", "web", *M], 2, "--serve takes [HOST:]PORT, got 'web'"),
        # Reliability round 3 (#33): each was a traceback or a silent exit 0 before.
        ("--blur with --detect-every 3", [VIDEO, "--blur", "--detect-every", "3", *M], 2,
         "--blur with --detect-every 3: whatever appears between two detections shows "
         "unhidden until the next one; leave out --detect-every to detect every frame, or add "
         "--accept-blur-gaps"),
        ("--blur with --detect-every auto", [VIDEO, "--blur", "--detect-every", "auto", *M], 2,
         "--blur with --detect-every auto: whatever appears between two detections shows "
         "unhidden until the next one; leave out --detect-every to detect every frame, or add "
         "--accept-blur-gaps"),
        ("--blur a class --classes leaves out", [VIDEO, "--blur", "person", "--classes", "tv",
                                                  *M], 2,
         "--blur person: --classes tv leaves it undetected, so it would never be hidden; use "
         "--classes tv,person"),
        ("--blur ''", [VIDEO, "--blur", "", *M], 2,
         "--blur names no class; give classes (--blur person,car), or --blur alone for person"),
        ("--line far off", [VIDEO, "--line", "1e308,0,-1e308,432", *M], 2,
         "--line '1e308,0,-1e308,432': coordinates must be within ±100000 pixels of the "
         "frame's corner"),
        ("--line 3e9", [VIDEO, "--line", "0,0,3e9,432", *M], 2,
         "--line '0,0,3e9,432': coordinates must be within ±100000 pixels of the frame's "
         "corner"),
        ("--zone far off", [VIDEO, "--zone", "1e10,0,-1e10,0,0,1e10", *M], 2,
         "--zone '1e10,0,-1e10,0,0,1e10': coordinates must be within ±100000 pixels of the "
         "frame's corner"),
        ("a line and a zone share a name", [VIDEO, "--zone", "a=0,0,1,0,1,1", "--line",
                                            "a=0,0.5,1,0.5", *M], 2,
         "--line and --zone both use the name 'a'; names must differ"),
        ("a bowtie zone", [VIDEO, "--zone", "0,0,1,1,1,0,0,1", *M], 2,
         "--zone '0,0,1,1,1,0,0,1': the zone crosses itself; give its corners in order around "
         "its edge"),
        ("an asymmetric bowtie zone", [VIDEO, "--zone", "0,0,1,1,1,0,0,0.6", *M], 2,
         "--zone '0,0,1,1,1,0,0,0.6': the zone crosses itself; give its corners in order "
         "around its edge"),
        ("--trails beyond any int", [VIDEO, "--track", "--trails", "9" * 23, *M], 2,
         f"--trails must be at most 10000, got {'9' * 23}"),
        ("--track-buffer inf", [VIDEO, "--track", "--track-buffer", "inf", *M], 2,
         "--track-buffer must be a finite number of seconds, 0 or more, got inf"),
        ("--json - and --mot -", [VIDEO, "--json", "-", "--mot", "-", *M], 2,
         "--json - and --mot - would both write to stdout; send one to a file"),
        ("-o a dangling symbolic link", [VIDEO, "-o", dangling, *M], 2,
         f"cannot write {dangling}: it is a dangling symbolic link (to {tmp / 'gone.mp4'}); "
         "remove it or choose another name"),
        ("--blur-style without --blur", [VIDEO, "--blur-style", "solid", *M], 2,
         "--blur-style sets how --blur hides: add --blur"),
        ("--blur-shape without --blur", [VIDEO, "--blur-shape", "ellipse", *M], 2,
         "--blur-shape sets how --blur hides: add --blur"),
        ("--anchor without lines", [VIDEO, "--anchor", "center", *M], 2,
         "--anchor places boxes on lines and zones: add --line or --zone"),
        ("--line-frames without lines", [VIDEO, "--line-frames", "3", *M], 2,
         "--line-frames counts crossings of lines and zones: add --line or --zone"),
        ("--track-buffer without tracking", [VIDEO, "--track-buffer", "2", *M], 2,
         "--track-buffer keeps lost tracks: add --track"),
        ("--accept-blur-gaps without gaps", [VIDEO, "--blur", "--accept-blur-gaps", *M], 2,
         "--accept-blur-gaps is for --blur with --detect-every: add --blur and --detect-every"),
        # Typer's wording depends on its version (0.16: "is not a valid float").
        ("non-numeric --conf", [VIDEO, "--conf", "high", *M], 2,
         re.compile(r"Invalid value for '--conf': ('high' is not a valid float\.|Input should be "
                    r"a valid number, unable to parse string as a number) \(see 'annotate run "
                    r"--help'\)")),
    ]  # fmt: skip


@pytest.mark.shared
def test_bad_input_matrix(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # no user registrations
    cases = _cases(tmp_path)
    assert len(cases) >= 25
    inputs = [VIDEO, *(p for p in tmp_path.rglob("*") if p.is_file())]
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in inputs}
    failures = []
    for name, args, code, line in cases:
        if args and args[0] == "@cwd":
            monkeypatch.chdir(args[1])
            args = args[2:]
        else:
            monkeypatch.chdir(tmp_path)
        r = cli("run", *args, "-q")
        lines = r.err.strip().splitlines()
        if isinstance(line, re.Pattern):
            ok = r.code == code and len(lines) == 1 and line.fullmatch(lines[0][len("Error: ") :])
        else:
            ok = (r.code, lines) == (code, [f"Error: {line}"])
        if not ok or "Traceback" in r.err:
            failures.append(f"{name}: exit {r.code}, stderr {r.err!r}")
    assert not failures, "\n".join(failures)
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in inputs} == before
