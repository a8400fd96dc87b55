"""What every source is: the :class:`Source` protocol and the defaults most sources share."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Protocol, TypeVar

from annotate.types import Frame, SourceInfo


class Source(Protocol):
    """What the pipeline needs from any input.

    Attributes:
        name: what the user typed, for messages and window titles.
        info: size, frame rate and kind, known before the first frame.
        path: a file whose other streams (audio) an output may copy; ``None`` for cameras,
            streams and images.
        dropped: frames a live source skipped because a newer one arrived (0 for files).
    """

    name: str
    info: SourceInfo

    @property
    def path(self) -> str | None: ...
    @property
    def dropped(self) -> int: ...
    def __iter__(self) -> Iterator[Frame]: ...
    def deferred(self) -> Iterator[Callable[[], Frame]]:
        """The frames as calls that finish them, so a runner can convert them on any thread."""
        ...

    def close(self) -> None: ...
    def __enter__(self) -> Source: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


_S = TypeVar("_S", bound="SourceBase")


class SourceBase:
    """Context-manager plumbing and the defaults of a source that drops nothing, has no file
    to copy audio from, and delivers frames ready-made."""

    path: str | None = None

    @property
    def dropped(self) -> int:
        return 0

    def __iter__(self) -> Iterator[Frame]:  # pragma: no cover - overridden
        raise NotImplementedError

    def deferred(self) -> Iterator[Callable[[], Frame]]:
        for frame in self:
            yield _ready(frame)

    def close(self) -> None:  # pragma: no cover - overridden
        pass

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _ready(frame: Frame) -> Callable[[], Frame]:
    return lambda: frame
