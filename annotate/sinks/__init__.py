"""Where annotated frames go. Every sink has ``write`` and an idempotent ``close`` and is a
context manager, so the pipeline's ``ExitStack`` finalises outputs on every path."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from annotate.stats import LiveStats
    from annotate.types import Detections, Frame


class Sink(Protocol):
    def write(
        self, frame: Frame, annotated: npt.NDArray[np.uint8], detections: Detections
    ) -> None: ...

    def close(self) -> None: ...


class SharedDisplay(Protocol):
    """A window or web page that shows every source of a multi-source run: each source's
    pipeline writes to the sink it gets from :meth:`add_source`."""

    def add_source(self, name: str, stats: LiveStats) -> Sink: ...


_S = TypeVar("_S", bound="SinkBase")


class SinkBase:
    """Context-manager plumbing; subclasses make ``close`` safe to call twice."""

    #: Whether :meth:`write` uses the annotated picture: where no sink does, nothing is drawn.
    pixels = True

    def close(self) -> None:  # pragma: no cover - overridden
        pass

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
