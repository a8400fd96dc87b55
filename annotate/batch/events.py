"""What a batch backend reports to the driver, in the order things happen."""

from __future__ import annotations

from typing import NamedTuple

from annotate.batch.manifest import Record


class Started(NamedTuple):
    index: int  # the job's index


class Progress(NamedTuple):
    index: int
    frames: int  # written so far
    total: int | None  # expected, if known


class Finished(NamedTuple):
    record: Record


Event = Started | Progress | Finished
