"""What a batch backend reports to the driver, in the order things happen, and how a
worker's updates travel to it: ``(job index, frames, expected)`` tuples, ``frames`` being
``STARTED`` when a worker takes the job."""

from __future__ import annotations

from typing import NamedTuple

from annotate.batch.manifest import Record


class Started(NamedTuple):
    job: int  # the job's index (not "index": a tuple's method)


class Progress(NamedTuple):
    job: int
    frames: int  # written so far
    total: int | None  # expected, if known


class Finished(NamedTuple):
    record: Record


Event = Started | Progress | Finished

#: An update's ``frames`` when a worker takes a job (before any frame).
STARTED = -1
#: Seconds the jobs in flight get to stop and clean up after a stop, before they are killed.
GRACE_S = 5.0
#: A stopped job's error when its worker could not say more, and a job the stop kept from
#: starting.
STOPPED = "stopped before the end; nothing written"
NOT_STARTED = "not started: the batch was stopped"


def started(index: int) -> tuple[int, int, None]:
    """The update a worker sends when it takes job ``index``."""
    return (index, STARTED, None)


def from_update(index: int, frames: int, total: int | None) -> Started | Progress:
    return Started(index) if frames == STARTED else Progress(index, frames, total)
