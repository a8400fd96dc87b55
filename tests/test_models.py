"""The model store (downloads from a local server), model families, labels and class filters."""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from annotate.detector.families import classify
from annotate.detector.postprocess import anchor_count
from annotate.errors import ModelError
from annotate.testing.models import constant_model
from tests.helpers import IMAGES, MODEL, VIDEOS


@functools.cache
def good() -> bytes:
    """The shared model's bytes, read on first use (collection must work without it)."""
    return MODEL.read_bytes()


def good_sha() -> str:
    return hashlib.sha256(good()).hexdigest()


class ModelServer:
    """Serves ``/yolox_nano.onnx`` in one of several ways: good, corrupt, truncated, slow."""

    def __init__(self, mode: str = "good") -> None:
        self.mode, self.paths = mode, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.paths.append(self.path)
                body = good() if server.mode != "corrupt" else good()[:-10] + b"0123456789"
                self.send_response(200)
                if server.mode == "endless":  # no length, and more bytes than any model has
                    self.end_headers()
                    self.wfile.write(body)
                    for _ in range(2000):
                        self.wfile.write(bytes(65536))
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.mode == "truncated":
                    self.wfile.write(body[: len(body) // 2])
                    return
                if server.mode == "slow":
                    self.wfile.write(body[:1000])
                    self.wfile.flush()
                    time.sleep(3)
                self.wfile.write(body)

        class Quiet(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that hangs up mid-body (as the size check does) is expected

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mirror"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def store(tmp_path, monkeypatch):
    """Empty user cache and data dirs, a registered downloadable ``test-nano`` whose sha256 is
    the shared file's, and ``ANNOTATE_MODEL_MIRROR`` pointing at a local server."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    registry = tmp_path / "data" / "annotate" / "models.toml"
    registry.parent.mkdir(parents=True)
    registry.write_text(
        '[test-nano]\nfile = "yolox_nano.onnx"\n'
        'url = "https://example.invalid/releases/yolox_nano.onnx"\n'
        f'sha256 = "{good_sha()}"\nsize = {len(good())}\nfamily = "yolox"\n'
    )
    servers = []

    def serve(mode: str = "good") -> ModelServer:
        server = ModelServer(mode)
        servers.append(server)
        monkeypatch.setenv("ANNOTATE_MODEL_MIRROR", server.url)
        return server

    yield serve
    for server in servers:
        server.close()


def _cached(tmp_path):
    return tmp_path / "cache" / "annotate" / "models" / "yolox_nano.onnx"


@pytest.mark.shared
def test_pull_verifies_and_keeps_the_file_name_on_the_mirror(cli, store, tmp_path):
    server = store("good")
    r = cli("models", "pull", "test-nano")
    assert r.code == 0, r.err
    assert server.paths == ["/mirror/yolox_nano.onnx"]
    assert r.out.strip() == str(_cached(tmp_path))
    assert hashlib.sha256(_cached(tmp_path).read_bytes()).hexdigest() == good_sha()
    assert cli("models", "path", "test-nano").out.strip() == str(_cached(tmp_path))
    assert "test-nano" in cli("models", "list").out


@pytest.mark.parametrize(
    ("mode", "message"),
    [("corrupt", "has sha256 "), ("truncated", "stopped at 1830046 of 3660092 bytes"),
     ("endless", "sent more than the expected 3660092 bytes; the file was deleted")],
)  # fmt: skip
@pytest.mark.shared
def test_bad_downloads_leave_nothing(cli, store, tmp_path, mode, message):
    store(mode)
    r = cli("models", "pull", "test-nano")
    assert (
        r.code == 1 and message in r.err and len(r.err.strip().splitlines()) == 2
    )  # + "Downloading…"
    assert r.err.strip().splitlines()[-1].startswith("Error: ")
    folder = _cached(tmp_path).parent
    assert not folder.exists() or list(folder.iterdir()) == []


@pytest.mark.shared
def test_a_model_without_a_published_hash_is_trusted_on_first_download_only(cli, store, tmp_path):
    """The first download is kept and its sha256 printed and recorded; a later download of
    other bytes under that name is refused, as for a model with a published hash."""
    registry = tmp_path / "data" / "annotate" / "models.toml"
    registry.write_text(
        registry.read_text() + '\n[unhashed]\nfile = "yolox_nano.onnx"\n'
        'url = "https://example.invalid/releases/yolox_nano.onnx"\nfamily = "yolox"\n'
        "input = 416\n"
    )
    store("good")
    r = cli("models", "pull", "unhashed")
    assert r.code == 0, r.err
    assert (
        f"unhashed: no published sha256 to check it against, so this first download is "
        f"trusted as it is (sha256 {good_sha()}); recorded in {registry}" in " ".join(r.err.split())
    )
    assert f'sha256 = "{good_sha()}"' in registry.read_text()
    _cached(tmp_path).unlink()
    store("corrupt")
    r = cli("models", "pull", "unhashed")
    assert r.code == 1 and f"expected {good_sha()}; the file was deleted" in r.err
    assert not _cached(tmp_path).exists()


def test_the_larger_yolox_releases_are_known_by_name():
    from annotate.models import registry

    known = registry()
    for name, size in (("yolox-tiny", 416), ("yolox-s", 640), ("yolox-m", 640),
                       ("yolox-l", 640), ("yolox-x", 640)):  # fmt: skip
        entry = known[name]
        assert entry.licence == "Apache-2.0" and entry.family == "yolox"
        assert entry.input == size and entry.sha256 is None
        assert entry.url is not None and entry.url.endswith(f"/0.1.1rc0/{entry.file}")


@pytest.mark.shared
def test_slow_server_times_out(cli, store, monkeypatch, tmp_path):
    import annotate.models.store as store_module

    monkeypatch.setattr(store_module, "TIMEOUT_S", 1)
    store("slow")
    r = cli("models", "pull", "test-nano")
    assert r.code == 1 and "timed out" in r.err and "offline?" in r.err
    assert not _cached(tmp_path).exists()


@pytest.mark.shared
def test_run_downloads_on_first_use(cli, store, tmp_path):
    store("good")
    r = cli("run", IMAGES / "chelsea.png", "--model", "test-nano", "--json", "-", "-q")
    assert r.code == 0, r.err
    assert json.loads(r.out)["detections"][0]["label"] == "cat"
    assert _cached(tmp_path).exists()


@pytest.mark.shared
def test_offline_message(cli, store):
    server = store("good")
    server.close()
    r = cli("run", IMAGES / "chelsea.png", "--model", "test-nano")
    assert r.code == 1
    assert "Error: cannot download test-nano from" in r.err
    assert "register it with 'annotate models add FILE', or pass --model PATH" in r.err


@pytest.mark.shared
def test_add_a_local_file(cli, store, tmp_path):
    r = cli("models", "add", MODEL, "--name", "my-nano")
    assert r.code == 0 and r.out.strip() == f"my-nano: {MODEL.resolve()}"
    r = cli("run", IMAGES / "coffee.png", "--model", "my-nano", "--json", "-", "-q")
    assert r.code == 0 and "cup" in r.out
    # A file whose sha256 is a known model's is copied into the cache under that name.
    assert cli("models", "add", MODEL).code == 0
    assert _cached(tmp_path).read_bytes() == good()


def test_add_replaces_a_hand_written_table_of_the_same_name(cli, tiny_model, tmp_path, monkeypatch):
    """A user's own ``[mine]`` table, then ``models add … --name mine``: one entry, the new
    file, the rest of the registry kept, and every command still reads it."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    registry = tmp_path / "data" / "annotate" / "models.toml"
    registry.parent.mkdir(parents=True)
    registry.write_text('# mine\n[mine]\nfile = "old.onnx"\n\n[other]\nfile = "o.onnx"\n')
    r = cli("models", "add", tiny_model, "--name", "mine")
    assert r.code == 0, r.err
    assert r.out.strip() == f"mine: {tiny_model.resolve()}"
    listed = cli("models", "list")
    assert listed.code == 0, listed.err
    assert cli("models", "path", "mine").out.strip() == str(tiny_model.resolve())
    text = registry.read_text()
    assert text.count("[mine]") == 1 and "[other]" in text and "old.onnx" not in text
    assert not list(registry.parent.glob("*.tmp"))


def test_add_refuses_to_rewrite_a_broken_registry(cli, tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    registry = tmp_path / "data" / "annotate" / "models.toml"
    registry.parent.mkdir(parents=True)
    registry.write_text("[mine\n")
    r = cli("models", "add", tiny_model, "--name", "mine")
    assert r.code == 2 and r.err.startswith(f"Error: {registry} is not valid TOML")
    assert registry.read_text() == "[mine\n"  # left as it was


@pytest.mark.shared
def test_mirror_that_is_not_a_url(cli, store, monkeypatch):
    monkeypatch.setenv("ANNOTATE_MODEL_MIRROR", "notaurl")
    r = cli("models", "pull", "test-nano")
    assert r.code == 2 and r.err == (
        "Error: ANNOTATE_MODEL_MIRROR must be an http:// or https:// URL, got 'notaurl'\n"
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [('size = "big"', "'mine.size' must be a whole number, got 'big'"),
     ("url = 5", "'mine.url' must be a string, got 5"),
     ("input = true", "'mine.input' must be a whole number, got True")],
)  # fmt: skip
def test_registry_fields_of_the_wrong_type(cli, tmp_path, monkeypatch, entry, message):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    registry = tmp_path / "data" / "annotate" / "models.toml"
    registry.parent.mkdir(parents=True)
    registry.write_text(f'[mine]\nfile = "m.onnx"\n{entry}\n')
    for args in (("models", "list"), ("run", tmp_path, "--model", "mine")):
        r = cli(*args)
        assert r.code == 2 and r.err == f"Error: {registry}: {message}\n", args


def test_model_names_are_checked_and_any_file_name_is_kept(cli, tiny_model, tmp_path, monkeypatch):
    """A name that is not a name is refused before the registry is touched; a file with any
    name (an emoji, a quote) is registered and read back."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    registry = tmp_path / "data" / "annotate" / "models.toml"
    r = cli("models", "add", tiny_model, "--name", 'a"b')
    assert r.code == 2 and r.err.startswith("Error: model name 'a\"b' must be letters, digits")
    assert not registry.exists()
    odd = tmp_path / 'tiny "🎥" model.onnx'
    odd.write_bytes(tiny_model.read_bytes())
    r = cli("models", "add", odd, "--name", "emoji")
    assert r.code == 0, r.err
    assert cli("models", "path", "emoji").out.strip() == str(odd.resolve())
    assert cli("models", "list").code == 0


@pytest.mark.shared
def test_unknown_model_name(cli, store):
    r = cli("models", "pull", "yolo-huge")
    assert r.code == 2 and r.err.startswith("Error: unknown model 'yolo-huge'")


# Families, decoded exactly from hand-made outputs.


def _picture(folder: Path) -> Path:
    """A 600x400 picture (the constant models ignore what is in it)."""
    import cv2

    path = folder / "picture.png"
    cv2.imwrite(str(path), np.full((400, 600, 3), 90, np.uint8))
    return path


def _run_json(cli, model, *args, image: Path = IMAGES / "coffee.png"):
    r = cli("run", image, "--model", model, "--json", "-", "-q", *args)
    assert r.code == 0, r.err
    return json.loads(r.out)


def test_ultralytics_yolov8_layout_with_names(cli, tmp_path):
    """[1, 4+C, N], centred letterbox, names from metadata, input size from the model."""
    n = anchor_count((320, 320))
    out = np.zeros((1, 4 + 3, n), np.float32)
    out[0, :4, 7] = [160, 160, 100, 50]  # cx, cy, w, h in the 320x320 canvas
    out[0, 4 + 2, 7] = 0.9  # class 2
    names = "{0: 'apple', 1: 'pear', 2: 'plum'}"
    model = constant_model(
        tmp_path / "v8.onnx", out, [1, 3, 320, 320], {"names": names, "author": "Ultralytics"}
    )
    record = _run_json(cli, model, image=_picture(tmp_path))
    (d,) = record["detections"]
    # the picture is 600x400: ratio 320/600, image 320x213 centred with pad_y = 53.
    ratio, pad_y = 320 / 600, (320 - int(400 * 320 / 600)) // 2
    expected = [
        (160 - 50 - 0) / ratio,
        (160 - 25 - pad_y) / ratio,
        (160 + 50) / ratio,
        (160 + 25 - pad_y) / ratio,
    ]
    assert d["label"] == "plum" and d["class_id"] == 2 and d["score"] == pytest.approx(0.9)
    assert d["box"] == pytest.approx(expected, abs=0.02)


def test_ultralytics_yolov5_layout_with_dynamic_axes(cli, tmp_path):
    """[1, 3N, 5+C] with objectness; dynamic input axes sized from ``imgsz`` metadata."""
    n = 3 * anchor_count((256, 256))
    out = np.zeros((1, n, 5 + 80), np.float32)
    out[0, 11, :5] = [128, 128, 64, 64, 0.8]
    out[0, 11, 5 + 41] = 0.5  # cup
    model = constant_model(
        tmp_path / "v5.onnx", out, [1, 3, "height", "width"], {"imgsz": "[256, 256]"}
    )
    (d,) = _run_json(cli, model, image=_picture(tmp_path))["detections"]
    assert d["label"] == "cup" and d["score"] == pytest.approx(0.4)
    ratio, pad_y = 256 / 600, (256 - int(400 * 256 / 600)) // 2
    assert d["box"] == pytest.approx(
        [96 / ratio, (96 - pad_y) / ratio, 160 / ratio, (160 - pad_y) / ratio], abs=0.02
    )


def test_labels_file_and_family_override(cli, tmp_path):
    n = anchor_count((320, 320))
    out = np.zeros((1, n, 5 + 2), np.float32)
    out[0, 0, :] = [0.5, 0.5, 0, 0, 1.0, 0.1, 0.7]  # first anchor, stride 8: centre 4, size 8
    model = constant_model(tmp_path / "x.onnx", out, [1, 3, 320, 320])
    labels = tmp_path / "labels.txt"
    labels.write_text("fish\nboat\n")
    picture = _picture(tmp_path)
    (d,) = _run_json(cli, model, "--labels", labels, "--family", "yolox", image=picture)[
        "detections"
    ]
    assert d["label"] == "boat" and d["score"] == pytest.approx(0.7)
    assert d["box"] == pytest.approx([0, 0, 8 * 600 / 320, 8 * 600 / 320], abs=0.02)
    bad = tmp_path / "three.txt"
    bad.write_text("a\nb\nc\n")
    r = cli("run", _picture(tmp_path), "--model", model, "--labels", bad)
    assert r.code == 2 and r.err.strip().splitlines()[-1] == (
        f"Error: labels file {bad} has 3 names but {model} has 2 classes"
    )


@pytest.mark.shared
def test_not_a_detector(cli, tmp_path):
    model = constant_model(tmp_path / "cls.onnx", np.zeros((1, 1000), np.float32), [1, 3, 224, 224])
    r = cli("run", IMAGES / "coffee.png", "--model", model)
    assert r.code == 1
    assert (
        r.err.strip()
        .splitlines()[-1]
        .startswith(f"Error: {model}: output shape [1, 1000] is not a detector layout")
    )


@pytest.mark.parametrize(
    ("shape", "expected"),
    [((1, 3549, 85), ("yolox", 80)), ((1, 3 * 3549, 85), ("yolov5", 80)),
     ((1, 84, 3549), ("yolov8", 80)), ((1, 3549, 7), ("yolox", 2))],
)  # fmt: skip
def test_classify_layouts(shape, expected):
    family, classes = classify(shape, (416, 416), None)
    assert (family.name, classes) == expected


def test_classify_refuses_unknown_layouts():
    with pytest.raises(ModelError, match=r"output shape \[1, 100, 85\] is not a detector layout"):
        classify((1, 100, 85), (416, 416), None)


# Class filters on the real model.


@pytest.mark.shared
def test_classes_by_name_and_id(cli):
    full = _run_json(cli, MODEL)
    assert {d["label"] for d in full["detections"]} == {"cup", "dining table"}
    assert [d["label"] for d in _run_json(cli, MODEL, "--classes", "cup")["detections"]] == ["cup"]
    only_table = _run_json(cli, MODEL, "--classes", "60")["detections"]
    assert [d["label"] for d in only_table] == ["dining table"]


@pytest.mark.shared
def test_min_area_and_max_det(cli):
    # The table box covers nearly the whole 600x400 photo, the cup about 260x280.
    big = _run_json(cli, MODEL, "--min-area", "100000")["detections"]
    assert [d["label"] for d in big] == ["dining table"]
    assert len(_run_json(cli, MODEL, "--max-det", "1")["detections"]) == 1


@pytest.mark.shared
def test_filter_errors(cli):
    r = cli("run", VIDEOS / "asl_walk.mkv", "--model", MODEL, "--classes", "persn")
    assert r.code == 2 and "unknown class 'persn' in --classes; did you mean person?" in r.err
    r = cli("run", VIDEOS / "asl_walk.mkv", "--model", MODEL, "--max-det", "0")
    assert r.code == 2 and "--max-det must be at least 1" in r.err


@pytest.mark.parametrize("kind", ["int8", "fp16"])
@pytest.mark.shared
def test_quantized_variants_are_registered_and_run(cli, store, tmp_path, kind):
    args = ["--calibration", str(IMAGES / "coffee.png"), "--frames", "2"] if kind == "int8" else []
    r = cli("models", "quantize", MODEL, f"--{kind}", *args)
    assert r.code == 0, r.err
    name, path = r.out.strip().split(": ")
    assert name == f"yolox-nano-{kind}" and path.endswith(f"yolox_nano.{kind}.onnx")
    record = _run_json(cli, name)
    assert record["detections"] and record["width"] == 600  # loads, runs, finds something


@pytest.mark.shared
def test_quantize_needs_one_kind(cli, store):
    r = cli("models", "quantize", MODEL)
    assert r.code == 2 and r.err.startswith("Error: give exactly one of --int8 and --fp16")


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("family", ["yolox", "yolov5", "yolov8"])
def test_the_scored_output_decodes_to_the_same_boxes_as_the_models_own(tmp_path, family, opset):
    """On an accelerator the graph reduces the class scores itself (a second output of six
    numbers per candidate); decoding it gives exactly the boxes, scores and classes the CPU
    reads from the model's own output, for every family's layout (and both forms of
    ReduceMax)."""
    import onnx
    import onnxruntime as ort

    from annotate.detector.families import FAMILIES
    from annotate.detector.graph import SCORED_OUTPUT, Edits, edited_model
    from annotate.detector.preprocess import Letterbox

    chosen = FAMILIES[family]
    hw = (128, 192)
    n = anchor_count(hw) * (3 if family == "yolov5" else 1)
    rng = np.random.default_rng(7)
    rows = np.zeros((n, (4 if family == "yolov8" else 5) + 6), np.float32)
    rows[:, :2] = rng.uniform(0, 1, (n, 2)) if family == "yolox" else rng.uniform(0, 128, (n, 2))
    rows[:, 2:4] = rng.uniform(-1, 1, (n, 2)) if family == "yolox" else rng.uniform(4, 60, (n, 2))
    rows[:, 4:] = rng.uniform(0, 1, (n, rows.shape[1] - 4)) ** 3
    out = (rows.T if chosen.transposed else rows)[None]
    model = constant_model(tmp_path / "m.onnx", out, [1, 3, *hw])
    proto = onnx.load(str(model))
    proto.opset_import[0].version = opset
    onnx.save(proto, str(model))
    edited = edited_model(model, Edits(scored=lambda i, o: (chosen.objectness, chosen.transposed)))
    assert edited is not None
    session = ort.InferenceSession(edited, providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["output", SCORED_OUTPUT]
    own, scored = session.run(None, {"images": np.zeros((1, 3, *hw), np.float32)})
    assert scored.shape == (1, n, 6)
    box = Letterbox(ratio=0.5, source_width=384, source_height=192, canvas_hw=hw, pad_y=16)
    a = chosen.decode_output(own, box, hw, 0.3, 0.45, classes={1, 2, 4})
    b = chosen.decode_scored(scored, box, hw, 0.3, 0.45, classes={1, 2, 4})
    assert len(a) > 20 and set(a.class_ids) == {1, 2, 4}
    np.testing.assert_array_equal(a.class_ids, b.class_ids)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-4)
