"""Counting tracks across lines and inside zones, robust to boxes that jitter.

Each (shape, track) pair keeps a small state: the side of the line (or inside/outside the
zone) it is confirmed on, and a candidate new side with how many frames in a row it has held.
A change counts only after ``frames`` consecutive frames on the new side, so a box whose
anchor jitters across a line counts nothing. For lines, the move from the last position on
the old side to the first on the new one must pass through the drawn segment, not beside it,
whatever frames (dropped, predicted) lay between those two positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from annotate.analytics.geometry import Shape, anchor_points, inside, segments_cross, side
from annotate.types import Detections

#: A track's state is forgotten after this many seconds unseen (the tracker has long dropped
#: it by then, and its id is never reused), so memory holds only recent tracks.
FORGET_S = 10.0


@dataclass
class _State:
    confirmed: int | None = None  # line: -1/+1 side; zone: 1 inside, 0 outside
    candidate: int | None = None  # the other side, while it has not held long enough
    held: int = 0  # frames in a row on the candidate side
    last_point: npt.NDArray[np.float64] | None = None  # line: last point on the confirmed side
    first_new: npt.NDArray[np.float64] | None = None  # line: first point on the candidate side
    seen: float = 0.0
    since: float = 0.0  # when the candidate side was first seen
    entered_at: float | None = None  # zone: first frame of the stay inside
    counted: set[str] = field(default_factory=set)  # line: directions already counted


@dataclass
class Event:
    shape: str
    track_id: int
    kind: str  # "in"/"out" for lines; "enter"/"leave" for zones
    label: str

    def as_json(self) -> dict[str, Any]:
        key = "line" if self.kind in ("in", "out") else "zone"
        field_ = "direction" if key == "line" else "event"
        return {key: self.shape, "track_id": self.track_id, field_: self.kind, "label": self.label}


class Counter:
    """Lines and zones over one source's tracked detections, frame by frame, in order."""

    def __init__(
        self,
        lines: Sequence[Shape] = (),
        zones: Sequence[Shape] = (),
        anchor: str = "bottom",
        frames: int = 2,
    ) -> None:
        self.lines, self.zones = list(lines), list(zones)
        self.anchor, self.frames = anchor, frames
        self._size: tuple[int, int] | None = None
        self._pixels: dict[str, npt.NDArray[np.float64]] = {}
        self._states: dict[tuple[str, int], _State] = {}
        # Nested counts, as the JSON writes them.
        self.line_counts: dict[str, dict[str, Any]] = {
            s.name: {"in": 0, "out": 0, "by_class": {}} for s in self.lines
        }
        self.zone_counts: dict[str, dict[str, Any]] = {
            s.name: {"now": 0, "entered": 0, "by_class": {}, "dwell": {}} for s in self.zones
        }
        self.dwell_done: dict[str, list[float]] = {s.name: [] for s in self.zones}
        self.events: list[Event] = []  # the last frame's

    def pixels(self, width: int, height: int) -> dict[str, npt.NDArray[np.float64]]:
        """Each shape's points in this frame's pixels."""
        if self._size != (width, height):
            self._size = (width, height)
            self._pixels = {s.name: s.in_pixels(width, height) for s in self.lines + self.zones}
        return self._pixels

    def update(self, detections: Detections, time: float, width: int, height: int) -> list[Event]:
        """The frame's crossing and zone events; counts are updated in place."""
        pixels = self.pixels(width, height)
        events: list[Event] = []
        ids = detections.track_id
        if ids is None:
            return events
        points = anchor_points(detections.xyxy, self.anchor)
        now: dict[str, dict[str, int]] = {z.name: {} for z in self.zones}
        for point, track, cls in zip(points, ids.tolist(), detections.class_ids.tolist()):
            if track <= 0:
                continue
            label = detections.class_name(cls)
            for line in self.lines:
                event = self._line(line.name, pixels[line.name], track, point, time, label)
                if event:
                    events.append(event)
            for zone in self.zones:
                event = self._zone(zone.name, pixels[zone.name], track, point, time, label)
                if event:
                    events.append(event)
                state = self._states[zone.name, track]
                if state.confirmed == 1:
                    now[zone.name][label] = now[zone.name].get(label, 0) + 1
        for zone in self.zones:
            counts = self.zone_counts[zone.name]
            counts["now"] = sum(now[zone.name].values())
            counts["now_by_class"] = now[zone.name]
            counts["dwell"] = {
                str(t): round(time - s.entered_at, 3)
                for (name, t), s in self._states.items()
                if name == zone.name and s.entered_at is not None and s.seen == time
            }
        self._forget(time)
        self.events = events
        return events

    def _line(
        self,
        name: str,
        ab: npt.NDArray[np.float64],
        track: int,
        point: npt.NDArray[np.float64],
        time: float,
        label: str,
    ) -> Event | None:
        a, b = ab
        state = self._states.setdefault((name, track), _State())
        state.seen = time
        where = side(point, a, b)
        if where == 0:  # exactly on the line: no side yet
            return None
        if state.confirmed is None or where == state.confirmed:
            state.confirmed, state.candidate, state.held = where, None, 0
            state.last_point = point
            return None
        if not self._held(state, where, point, time):
            return None
        assert state.last_point is not None and state.first_new is not None
        crossed = segments_cross(state.last_point, state.first_new, a, b)
        state.confirmed, state.candidate, state.held = where, None, 0
        state.last_point = point
        direction = "in" if where > 0 else "out"  # from left to right of a→b is "in"
        if not crossed or direction in state.counted:  # around the segment's end, or again
            return None
        state.counted.add(direction)
        counts = self.line_counts[name]
        counts[direction] += 1
        per_class = counts["by_class"].setdefault(label, {"in": 0, "out": 0})
        per_class[direction] += 1
        return Event(name, track, direction, label)

    def _zone(
        self,
        name: str,
        polygon: npt.NDArray[np.float64],
        track: int,
        point: npt.NDArray[np.float64],
        time: float,
        label: str,
    ) -> Event | None:
        state = self._states.setdefault((name, track), _State(confirmed=0))
        state.seen = time
        where = int(inside(point, polygon))
        if where == state.confirmed:
            state.candidate, state.held = None, 0
            return None
        if not self._held(state, where, point, time):
            return None
        state.confirmed, state.candidate, state.held = where, None, 0
        counts = self.zone_counts[name]
        if where == 1:  # dwell runs from the first frame inside to the first frame outside
            state.entered_at = state.since
            if "entered" not in state.counted:  # a track that leaves and comes back: once
                state.counted.add("entered")
                counts["entered"] += 1
                counts["by_class"][label] = counts["by_class"].get(label, 0) + 1
            return Event(name, track, "enter", label)
        if state.entered_at is not None:
            self.dwell_done[name].append(state.since - state.entered_at)
            state.entered_at = None
        return Event(name, track, "leave", label)

    def _held(self, state: _State, where: int, point: npt.NDArray[np.float64], time: float) -> bool:
        """A frame on ``where``, not the confirmed side: ``True`` once that side has held
        ``frames`` frames in a row (where and when it began are kept for the caller)."""
        if where != state.candidate:
            state.candidate, state.held, state.first_new, state.since = where, 0, point, time
        state.held += 1
        return state.held >= self.frames

    def _forget(self, time: float) -> None:
        for key in [k for k, s in self._states.items() if time - s.seen > FORGET_S]:
            state = self._states.pop(key)
            if state.entered_at is not None and key[0] in self.dwell_done:
                self.dwell_done[key[0]].append(state.seen - state.entered_at)

    def record(self) -> dict[str, Any]:
        """What each JSON Lines record adds: cumulative counts and this frame's events."""
        return {"counts": self.as_json(), "events": [e.as_json() for e in self.events]}

    def as_json(self) -> dict[str, Any]:
        """Cumulative counts for a JSON Lines record."""
        zones = {
            name: {
                "now": c["now"],
                "entered": c["entered"],
                "by_class": {"now": c.get("now_by_class", {}), "entered": c["by_class"]},
                "dwell_s": c["dwell"],
            }
            for name, c in self.zone_counts.items()
        }
        return {"lines": self.line_counts, "zones": zones}
