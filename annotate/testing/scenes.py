"""Clips with known paths: people cut from a shared photo, moving over a background.

Every true box is known, so a tracker's identities can be scored (``annotate.tracking.
metrics``). Used by the tracking tests and ``scripts/tracking_eval.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from annotate.testing import shared_dir

SIZE = (1280, 720)
FPS = 30
#: The astronaut in the shared photo, as the model finds her (person 0.93).
PERSON = (11, 20, 369, 507)


@dataclass
class Walker:
    """A person cut from the photo, walking in a straight line; ``None`` while absent."""

    start: tuple[float, float]  # top-left at frame 0
    velocity: tuple[float, float]  # pixels per frame
    height: int = 300
    flip: bool = False
    absent: range = range(0)
    ident: int | None = None  # the same person as another walker; default: its own

    def box(self, i: int) -> tuple[float, float, float, float] | None:
        if i in self.absent:
            return None
        x1, y1, x2, y2 = PERSON
        w = round(self.height * (x2 - x1) / (y2 - y1))
        x, y = self.start[0] + self.velocity[0] * i, self.start[1] + self.velocity[1] * i
        return (x, y, x + w, y + self.height)


@dataclass
class Scene:
    name: str
    frames: int
    walkers: list[Walker]  # later ones are drawn in front
    black: range = range(0)  # frames where the camera sees nothing
    images: list[np.ndarray] = field(default_factory=list, repr=False)

    def render(self) -> Iterator[tuple[np.ndarray, list[tuple[int, tuple[float, ...]]]]]:
        """Each frame (BGR) and its true boxes ``(id, xyxy)``, ids from 1 in walker order
        (or the walker's ``ident``).

        A box hidden by more than half (behind another walker or outside the frame) is not
        in the truth: nothing can be expected to find it.
        """
        import cv2

        photo = cv2.imread(str(shared_dir() / "data" / "images" / "astronaut.png"))
        assert photo is not None, "the astronaut photo in ../shared/data/images"
        x1, y1, x2, y2 = PERSON
        person = photo[y1:y2, x1:x2]
        width, height = SIZE
        ys, xs = np.mgrid[0:height, 0:width]
        rng = np.random.default_rng(0)
        background = np.dstack(
            [(90 + 60 * xs / width), (110 + 40 * ys / height), np.full(xs.shape, 120.0)]
        )
        background = (background + rng.normal(0, 6, background.shape)).clip(0, 255)
        background = background.astype(np.uint8)
        for i in range(self.frames):
            if i in self.black:
                yield np.zeros_like(background), []
                continue
            image = background.copy()
            owner = np.zeros((height, width), np.int32)  # which walker each pixel shows
            full: dict[int, tuple[int, int, int, int]] = {}
            for n, walker in enumerate(self.walkers, start=1):
                k = walker.ident or n
                box = walker.box(i)
                if box is None:
                    continue
                bx1, by1, bx2, by2 = (round(v) for v in box)
                patch = cv2.resize(person, (bx2 - bx1, by2 - by1), interpolation=cv2.INTER_AREA)
                if walker.flip:
                    patch = patch[:, ::-1]
                cx1, cy1, cx2, cy2 = max(bx1, 0), max(by1, 0), min(bx2, width), min(by2, height)
                if cx1 >= cx2 or cy1 >= cy2:
                    continue
                image[cy1:cy2, cx1:cx2] = patch[cy1 - by1 : cy2 - by1, cx1 - bx1 : cx2 - bx1]
                owner[cy1:cy2, cx1:cx2] = k
                full[k] = (bx1, by1, bx2, by2)
            truth: list[tuple[int, tuple[float, ...]]] = []
            for k, (bx1, by1, bx2, by2) in full.items():
                area = (bx2 - bx1) * (by2 - by1)
                if np.count_nonzero(owner == k) * 2 < area:
                    continue
                truth.append((k, (max(bx1, 0), max(by1, 0), min(bx2, width), min(by2, height))))
            yield image, truth


def scenes() -> list[Scene]:
    """Two people crossing (one passes behind the other); one walking through 6 black
    frames; one leaving the frame for 1.5 s and coming back."""
    return [
        Scene(
            "crossing",
            120,
            [Walker((40, 380), (8.2, 0)), Walker((1020, 400), (-8.2, 0), flip=True)],
        ),
        Scene("blackout", 90, [Walker((60, 300), (10, 0))], black=range(40, 46)),
        Scene(
            "leave and return",
            150,
            [
                Walker((800, 300), (12, 0), absent=range(45, 150)),
                Walker((2310, 300), (-12, 0), flip=True, absent=range(90), ident=1),
            ],
        ),
    ]


def write_scene(scene: Scene, path: Path) -> list[list[tuple[int, tuple[float, ...]]]]:
    """The scene as an H.264 file at 30 FPS (PyAV directly, not the code under test);
    returns each frame's true boxes."""
    import av

    truths = []
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        stream.options = {"crf": "18", "preset": "ultrafast"}
        for i, (image, truth) in enumerate(scene.render()):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = i
            frame.time_base = Fraction(1, FPS)
            for packet in stream.encode(frame):
                container.mux(packet)
            truths.append(truth)
        for packet in stream.encode(None):
            container.mux(packet)
    return truths
