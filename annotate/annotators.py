"""Drawing detections onto frames. Each annotator draws in place and returns the image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from annotate.types import Detections

# A 20-colour qualitative palette (BGR), distinct on both light and dark footage.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207),
    (10, 249, 72), (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0),
    (168, 153, 44), (255, 194, 0), (147, 69, 52), (255, 115, 100), (236, 24, 0),
    (255, 56, 132), (133, 0, 82), (255, 56, 203), (200, 149, 255), (199, 55, 255),
)  # fmt: skip


def class_colour(class_id: int) -> tuple[int, int, int]:
    return PALETTE[int(class_id) % len(PALETTE)]


def _text_colour(bgr: tuple[int, int, int]) -> tuple[int, int, int]:
    b, g, r = bgr
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 150 else (255, 255, 255)


def scale_for(image: npt.NDArray[np.uint8]) -> float:
    """1.0 at 720p; text and lines grow with the image so labels read at 360p and at 4K."""
    return max(0.65, min(image.shape[:2]) / 720)


class Annotator(Protocol):
    def annotate(
        self, scene: npt.NDArray[np.uint8], detections: Detections
    ) -> npt.NDArray[np.uint8]: ...


class BoxAnnotator:
    """Draws each box in its class colour. Draws in place."""

    def __init__(self, thickness: float = 2.0) -> None:
        self.thickness = thickness

    def annotate(
        self, scene: npt.NDArray[np.uint8], detections: Detections
    ) -> npt.NDArray[np.uint8]:
        import cv2

        width = max(2, round(self.thickness * scale_for(scene)))
        # Lowest score first so the strongest box ends up on top.
        for i in np.argsort(detections.scores, kind="stable"):
            x1, y1, x2, y2 = (round(v) for v in detections.xyxy[i])
            colour = class_colour(detections.class_ids[i])
            cv2.rectangle(scene, (x1, y1), (x2, y2), colour, width, cv2.LINE_AA)
        return scene


class LabelAnnotator:
    """Writes ``label score`` on a filled tab above each box (inside it at the top edge).

    Draws in place.
    """

    def __init__(self, labels: Sequence[str], font_scale: float = 0.6) -> None:
        self.labels = tuple(labels)
        self.font_scale = font_scale

    def text(self, class_id: int, score: float) -> str:
        name = self.labels[class_id] if 0 <= class_id < len(self.labels) else str(class_id)
        return f"{name} {score:.2f}"

    def annotate(
        self, scene: npt.NDArray[np.uint8], detections: Detections
    ) -> npt.NDArray[np.uint8]:
        import cv2

        scale = scale_for(scene)
        font_scale = self.font_scale * scale
        thickness = max(1, round(1.5 * scale))
        pad = max(2, round(4 * scale))
        width = scene.shape[1]
        for i in np.argsort(detections.scores, kind="stable"):
            x1, y1 = (round(v) for v in detections.xyxy[i][:2])
            colour = class_colour(detections.class_ids[i])
            text = self.text(int(detections.class_ids[i]), float(detections.scores[i]))
            (tw, th), baseline = cv2.getTextSize(
                text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness
            )
            box_h = th + baseline + 2 * pad
            top = y1 - box_h if y1 - box_h >= 0 else y1  # no room above: put the tab inside
            left = min(max(0, x1), max(0, width - tw - 2 * pad))
            cv2.rectangle(
                scene, (left, top), (left + tw + 2 * pad, top + box_h), colour, cv2.FILLED
            )
            cv2.putText(
                scene,
                text,
                (left + pad, top + pad + th),
                cv2.FONT_HERSHEY_SIMPLEX,
                font_scale,
                _text_colour(colour),
                thickness,
                cv2.LINE_AA,
            )
        return scene


def default_annotators(labels: Sequence[str]) -> list[Annotator]:
    return [BoxAnnotator(), LabelAnnotator(labels)]
