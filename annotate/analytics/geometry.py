"""Lines and zones as the user writes them: ``[NAME=]x1,y1,x2,y2[,…]``, in pixels or as
fractions of the frame."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from annotate.errors import UsageError

ANCHORS = ("bottom", "center")
#: The farthest a point may lie from the frame's corner, in pixels: far beyond any frame
#: (a line may start off-screen), and within what OpenCV can draw (int32 after its shifts).
MAX_COORD = 100_000


@dataclass(frozen=True)
class Shape:
    """A named line (2 points) or zone (3 or more), in pixels or fractions of the frame."""

    name: str
    points: tuple[tuple[float, float], ...]
    fractional: bool

    def in_pixels(self, width: int, height: int) -> npt.NDArray[np.float64]:
        points = np.array(self.points, np.float64)
        return points * (width, height) if self.fractional else points


def parse_shapes(specs: list[str], kind: str) -> list[Shape]:
    """``--line``/``--zone`` values; every mistake is a :class:`UsageError` naming the value.

    All numbers in 0–1 mean fractions of the frame (so one command fits any size); any number
    above 1 means pixels, and then none may be fractional. Points outside the frame are
    allowed (a line may start off-screen); a shape must not be degenerate.
    """
    flag, least = ("--line", 2) if kind == "line" else ("--zone", 3)
    shapes = []
    for n, spec in enumerate(specs, start=1):
        name, _, numbers = spec.rpartition("=")
        name = name.strip() or f"{kind}{n}"
        try:
            values = [float(v) for v in numbers.split(",")]
        except ValueError:
            raise UsageError(
                f"{flag} {spec!r}: coordinates must be numbers, as {_example(kind)}"
            ) from None
        if not all(math.isfinite(v) for v in values):
            raise UsageError(f"{flag} {spec!r}: coordinates must be finite numbers")
        if any(abs(v) > MAX_COORD for v in values):
            raise UsageError(
                f"{flag} {spec!r}: coordinates must be within ±{MAX_COORD} pixels of the "
                "frame's corner"
            )
        if kind == "line" and len(values) != 4:
            raise UsageError(
                f"{flag} {spec!r}: a line takes 4 numbers (x1,y1,x2,y2), got {len(values)}"
            )
        if len(values) % 2 or len(values) < 2 * least:
            raise UsageError(
                f"{flag} {spec!r}: a zone takes 3 or more points "
                f"(x1,y1,x2,y2,x3,y3,…), got {len(values)} numbers"
            )
        fractional = all(0 <= v <= 1 for v in values)
        if not fractional and any(0 < abs(v) < 1 for v in values):
            raise UsageError(
                f"{flag} {spec!r}: mixes fractions of the frame and pixels; "
                "give all four coordinates one way"
            )
        points = tuple(zip(values[0::2], values[1::2]))
        if len(set(points)) < least or (kind == "zone" and _collinear(points)):
            raise UsageError(f"{flag} {spec!r}: the {kind} has no length or area")
        if kind == "zone" and _crosses_itself(points):
            raise UsageError(
                f"{flag} {spec!r}: the zone crosses itself; give its corners in order around "
                "its edge"
            )
        shapes.append(Shape(name, points, fractional))
    names = [s.name for s in shapes]
    for name in names:
        if names.count(name) > 1:
            raise UsageError(f"{flag}: the name {name!r} is used twice; names must differ")
    return shapes


def _example(kind: str) -> str:
    return "door=100,400,500,400" if kind == "line" else "shop=0,0,0.5,0,0.5,1,0,1"


def _collinear(points: tuple[tuple[float, float], ...]) -> bool:
    """All points on one line: a polygon without area, whatever its order."""
    (x0, y0), rest = points[0], points[1:]
    pairs = itertools.combinations(rest, 2)
    return all((x1 - x0) * (y2 - y0) == (x2 - x0) * (y1 - y0) for (x1, y1), (x2, y2) in pairs)


def _crosses_itself(points: tuple[tuple[float, float], ...]) -> bool:
    """Whether two edges that do not share a corner meet (a bowtie), or two neighbours fold
    back over each other; "inside" has no single meaning for such a polygon."""
    p = np.array(points, np.float64)
    edges = list(zip(p, np.roll(p, -1, axis=0)))
    n = len(edges)
    for i, j in itertools.combinations(range(n), 2):
        (a, b), (c, d) = edges[i], edges[j]
        if j == i + 1 or (i == 0 and j == n - 1):  # neighbours share a corner
            far = d if j == i + 1 else c  # the neighbour's other end
            near = a if j == i + 1 else b  # this edge's end away from the shared corner
            shared = b if j == i + 1 else a
            if side(far, near, shared) == 0 and np.dot(far - shared, near - shared) > 0:
                return True  # folds back along itself
            continue
        if _segments_meet(a, b, c, d):
            return True
    return False


Point = npt.NDArray[np.float64]


def _segments_meet(a: Point, b: Point, c: Point, d: Point) -> bool:
    """Whether the closed segments a–b and c–d share a point."""
    sides = side(c, a, b), side(d, a, b), side(a, c, d), side(b, c, d)
    if sides[0] != sides[1] and sides[2] != sides[3] and 0 not in sides:
        return True

    def on(p: Point, q: Point, r: Point) -> bool:  # p on the segment q–r
        inside_box = np.all(np.minimum(q, r) <= p) and np.all(p <= np.maximum(q, r))
        return side(p, q, r) == 0 and bool(inside_box)

    return on(c, a, b) or on(d, a, b) or on(a, c, d) or on(b, c, d)


def anchor_points(xyxy: npt.NDArray[np.floating], anchor: str) -> npt.NDArray[np.float64]:
    """Where a box stands: bottom centre (feet on the floor) or centre."""
    x = (xyxy[:, 0] + xyxy[:, 2]) / 2
    y = xyxy[:, 3] if anchor == "bottom" else (xyxy[:, 1] + xyxy[:, 3]) / 2
    return np.stack([x, y], axis=1).astype(np.float64)


def side(
    point: npt.NDArray[np.floating], a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]
) -> int:
    """-1 left of the directed segment a→b as seen on screen (y down), +1 right, 0 on it."""
    cross = (b[0] - a[0]) * (point[1] - a[1]) - (b[1] - a[1]) * (point[0] - a[0])
    return int(np.sign(cross))


def segments_cross(
    p: npt.NDArray[np.floating],
    q: npt.NDArray[np.floating],
    a: npt.NDArray[np.floating],
    b: npt.NDArray[np.floating],
) -> bool:
    """Whether the move p→q passes through the segment a–b (not just its infinite line)."""
    return side(p, a, b) != side(q, a, b) and side(a, p, q) * side(b, p, q) <= 0


def inside(point: npt.NDArray[np.floating], polygon: npt.NDArray[np.floating]) -> bool:
    """Even-odd rule; a point on the edge counts as inside."""
    import cv2

    return (
        cv2.pointPolygonTest(polygon.astype(np.float32), (float(point[0]), float(point[1])), False)
        >= 0
    )
