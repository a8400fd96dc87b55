"""The detector: pre-process → ONNX Runtime session → post-process, each timed."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from annotate.detector.labels import COCO_LABELS
from annotate.detector.postprocess import anchor_count, decode
from annotate.detector.preprocess import Letterbox, letterbox
from annotate.detector.session import SessionInfo, SessionSettings, open_session
from annotate.errors import ModelError, UsageError
from annotate.providers import Resolution
from annotate.types import Detections

if TYPE_CHECKING:
    import onnxruntime

__all__ = ["COCO_LABELS", "Detector", "SessionInfo", "SessionSettings", "StageTimes"]


@dataclass
class StageTimes:
    """Seconds spent in each stage for the last image."""

    preprocess: float = 0.0
    inference: float = 0.0
    postprocess: float = 0.0


def check_thresholds(conf: float, iou: float) -> None:
    if not 0.0 <= conf <= 1.0:
        raise UsageError(f"--conf must be between 0 and 1, got {conf}")
    if not 0.0 <= iou <= 1.0:
        raise UsageError(f"--iou must be between 0 and 1, got {iou}")


class Detector:
    """YOLOX on ONNX Runtime; maps a BGR image to :class:`Detections` in source pixels.

    Example:
        >>> det = Detector.load(Path("models/yolox_nano.onnx"), resolution)  # doctest: +SKIP
        >>> det(cv2.imread("astronaut.png"))  # doctest: +SKIP
    """

    def __init__(
        self,
        session: onnxruntime.InferenceSession,
        info: SessionInfo,
        labels: Sequence[str] = COCO_LABELS,
        conf: float = 0.3,
        iou: float = 0.45,
        name: str = "model",
    ) -> None:
        check_thresholds(conf, iou)
        self.session = session
        self.info = info
        self.labels = tuple(labels)
        self.conf = conf
        self.iou = iou
        self.input_name, self.input_hw = _check_io(session, len(self.labels), name)
        self.times = StageTimes()

    @classmethod
    def load(
        cls,
        model: Path,
        resolution: Resolution,
        conf: float = 0.3,
        iou: float = 0.45,
        settings: SessionSettings | None = None,
        quiet: bool = False,
    ) -> Detector:
        check_thresholds(conf, iou)
        session, info = open_session(model, resolution, settings, quiet)
        return cls(session, info, COCO_LABELS, conf, iou, name=str(model))

    @property
    def provider(self) -> str:
        return self.info.provider

    def preprocess(self, image: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.float32], Letterbox]:
        return letterbox(image, self.input_hw)

    def infer(self, blob: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return self.session.run(None, {self.input_name: blob})[0]

    def postprocess(self, output: npt.NDArray[np.float32], box: Letterbox) -> Detections:
        return decode(output, box, self.input_hw, self.conf, self.iou)

    def detect(self, image: npt.NDArray[np.uint8]) -> tuple[Detections, StageTimes]:
        """Detections and the time each stage took (safe to call from a worker thread)."""
        t0 = time.perf_counter()
        blob, box = self.preprocess(image)
        t1 = time.perf_counter()
        output = self.infer(blob)
        t2 = time.perf_counter()
        detections = self.postprocess(output, box)
        t3 = time.perf_counter()
        return detections, StageTimes(t1 - t0, t2 - t1, t3 - t2)

    def __call__(self, image: npt.NDArray[np.uint8]) -> Detections:
        detections, self.times = self.detect(image)
        return detections


def _check_io(
    session: onnxruntime.InferenceSession, classes: int, name: str
) -> tuple[str, tuple[int, int]]:
    """Refuse models whose inputs/outputs are not YOLOX's, before the first frame."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) < 1:
        raise ModelError(f"{name} is not a YOLOX detector: expected 1 input, got {len(inputs)}")
    shape = inputs[0].shape
    if len(shape) != 4 or not all(isinstance(d, int) for d in shape[2:]) or shape[1] != 3:
        raise ModelError(
            f"{name} is not a YOLOX detector: input shape {shape}, expected [1, 3, H, W]"
        )
    input_hw = (int(shape[2]), int(shape[3]))
    expected = [1, anchor_count(input_hw), 5 + classes]
    out_shape = outputs[0].shape
    if len(out_shape) != 3 or any(
        isinstance(d, int) and d != e for d, e in zip(out_shape, expected)
    ):
        raise ModelError(
            f"{name} is not a YOLOX detector: output shape {out_shape}, expected {expected}"
        )
    return inputs[0].name, input_hw
