"""Identities across frames: a tracker stage between the detector and the annotators."""

from annotate.tracking.tracker import Tracker, TrackerSettings

__all__ = ["Tracker", "TrackerSettings"]
