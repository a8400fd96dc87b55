"""The canvas fitted to the frame: its size, which models and providers take it, and that it
finds what the model's square finds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from annotate.detector import Detector
from annotate.detector.canvas import fitted
from annotate.providers import CPU, Resolution
from annotate.testing.models import brightness_yolox
from tests.helpers import MODEL, VIDEOS, decode_video

ON_CPU = Resolution((CPU,), "test")


@pytest.mark.parametrize(
    ("image_hw", "expected"),
    [
        ((360, 640), (256, 416)),  # 16:9: 234 rows of picture, rounded up to 8 strides of 32
        ((1080, 1920), (256, 416)),
        ((480, 640), (320, 416)),  # 4:3: 312 rows
        ((640, 360), (416, 256)),  # portrait
        ((500, 500), (416, 416)),
        ((10, 4000), (32, 416)),  # a sliver still gets one stride
    ],
)
def test_fitted_canvas_is_the_letterboxed_picture_rounded_up_to_whole_strides(image_hw, expected):
    assert fitted((416, 416), image_hw) == expected


def test_fitted_canvas_never_exceeds_the_models_own():
    assert fitted((640, 320), (100, 100)) == (320, 320)


def white_block(height: int, width: int) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    image[64:128, 64:192] = 255
    return image


def test_a_convolutional_model_finds_the_same_boxes_on_a_fitted_canvas(tmp_path):
    detector = Detector.load(
        brightness_yolox(tmp_path / "bright.onnx", 416), ON_CPU, conf=0.6, free_size=True
    )
    assert detector.can_fit
    image = white_block(468, 832)  # 16:9 at half size: 416x234 of the picture on the canvas
    square = detector(image)
    detector.fit = True
    blob, box = detector.preprocess(image)
    assert blob.shape == (1, 3, 256, 416) and box.canvas_hw == (256, 416)
    found = detector(image)
    assert len(found) > 0
    np.testing.assert_allclose(found.xyxy, square.xyxy)
    np.testing.assert_allclose(found.scores, square.scores)
    # Every box is centred on the white block (64..192 x 64..128 in source pixels) or within
    # the coarsest stride (32 canvas pixels, 64 source pixels) of it.
    centres = (found.xyxy[:, :2] + found.xyxy[:, 2:]) / 2
    assert (centres >= 0).all() and (centres[:, 0] <= 256).all() and (centres[:, 1] <= 192).all()


def test_a_model_that_takes_only_its_size_keeps_its_square(tiny_model):
    detector = Detector.load(tiny_model, ON_CPU, free_size=True)  # output fixed at 64x64's grid
    assert not detector.can_fit


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_an_accelerator_keeps_the_size_it_compiles_for(tmp_path):
    """Only the CPU provider gets the model with a free size; a batching accelerator gets it
    with a free batch and the packed canvas instead (here CUDA falls back to the CPU)."""
    model = brightness_yolox(tmp_path / "bright.onnx", 128)
    on_cpu = Detector.load(model, ON_CPU, free_size=True)
    elsewhere = Detector.load(
        model, Resolution(("CUDAExecutionProvider", CPU), "test"), free_size=True
    )
    assert on_cpu.can_fit and not elsewhere.can_fit
    assert on_cpu.session.get_inputs()[0].shape[2:] == ["height", "width"]
    assert elsewhere.session.get_inputs()[0].shape == ["batch", 128, 128, 3]
    assert elsewhere.packed and not on_cpu.packed


def test_a_model_with_its_weights_in_another_file_loads_as_it_is(tmp_path):
    """Weights saved beside the model (ONNX external data) cannot be found from bytes in
    memory, so such a model keeps its square."""
    import onnx

    model = onnx.load(str(brightness_yolox(tmp_path / "bright.onnx", 128, classes=80)))
    split = tmp_path / "split"
    split.mkdir()
    onnx.save(
        model,
        str(split / "model.onnx"),
        save_as_external_data=True,
        location="weights.bin",
        size_threshold=100,
    )  # the conv's, not the shape
    assert (split / "weights.bin").stat().st_size > 0
    detector = Detector.load(split / "model.onnx", ON_CPU, free_size=True)
    assert not detector.can_fit
    assert len(detector(white_block(128, 128))) > 0  # and finds the block


def test_without_free_size_the_model_is_loaded_as_it_is(tmp_path):
    detector = Detector.load(brightness_yolox(tmp_path / "bright.onnx", 128), ON_CPU)
    assert not detector.can_fit and detector.input_hw == (128, 128)


@pytest.mark.shared
def test_the_real_model_on_real_footage_finds_the_same_objects_on_a_fitted_canvas():
    """Clear detections (0.5 and up) are the same objects with nearly the same scores; near
    --conf one canvas may keep a box the other drops (docs/models.md, the fitted canvas)."""
    _, _, frames = decode_video(VIDEOS / "bottle-detection.mp4")
    detector = Detector.load(MODEL, ON_CPU, free_size=True)
    assert detector.can_fit and detector.input_hw == (416, 416)
    compared = 0
    for image in frames[::60]:
        detector.fit = False
        square = detector(image)
        detector.fit = True
        assert detector.preprocess(image)[1].canvas_hw == (256, 416)
        fit = detector(image)
        for a, b in ((square, fit), (fit, square)):
            for i in np.flatnonzero(a.scores >= 0.5):
                same = np.flatnonzero(b.class_ids == a.class_ids[i])
                assert len(same), (a.xyxy[i], a.scores[i], b.xyxy)
                distance = np.abs(b.xyxy[same] - a.xyxy[i]).max(axis=1)
                assert distance.min() < 6, (a.xyxy[i], a.scores[i], b.xyxy)
                assert abs(b.scores[same[distance.argmin()]] - a.scores[i]) < 0.05
                compared += 1
    assert compared >= 20


@pytest.mark.shared
def test_videos_get_a_fitted_canvas_and_images_the_models_square(cli, tiny_model, tmp_path):
    from tests.helpers import IMAGES

    video = cli(
        "run",
        VIDEOS / "bottle-detection.mp4",
        "--model",
        MODEL,
        "--max-frames",
        "31",
        "--json",
        tmp_path / "v.jsonl",
        "-v",
    )
    assert video.code == 0, video.err
    assert "Canvas: 416x256 for 640x360 frames (the model's own: 416x416)" in video.err
    frame = json.loads((tmp_path / "v.jsonl").read_text().splitlines()[30])
    # The shared README's frame 30: three bottles at 0.93, 0.93 and 0.92.
    scores = [d["score"] for d in frame["detections"] if d["label"] == "bottle"]
    assert len(scores) == 3 and all(0.9 < s < 0.94 for s in scores)

    image = cli("run", IMAGES / "chelsea.png", "--model", MODEL, "--json", "-", "-v")
    assert image.code == 0
    assert "Canvas: 416x416" in image.err
    cat = json.loads(image.out)["detections"][0]
    assert cat["label"] == "cat" and cat["score"] == pytest.approx(0.62, abs=0.005)  # model README

    forced = cli("run", IMAGES / "chelsea.png", "--model", MODEL, "--json", "-", "--canvas", "fit")
    assert json.loads(forced.out)["detections"][0]["score"] != cat["score"]


def test_a_canvas_that_is_not_one_of_the_three_is_a_usage_error(cli, tiny_model, clip):
    result = cli("run", clip, "--model", tiny_model, "--canvas", "wide")
    assert result.code == 2
    assert "--canvas takes auto, fit, square; got 'wide'" in result.err


def test_fit_on_a_model_that_cannot_says_so_and_runs_square(cli, tiny_model, clip, tmp_path):
    result = cli(
        "run", clip, "--model", tiny_model, "--canvas", "fit", "--json", tmp_path / "d.jsonl"
    )
    assert result.code == 0
    assert "takes only its 64x64 input" in result.err
    assert len((tmp_path / "d.jsonl").read_text().splitlines()) == 200
