"""Holding back the signals that end a run while a step must not be cut in half."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

#: Signals that end a run; one that arrives while a frame is being written waits for the end
#: of that frame.
HELD_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def install(handlers: dict[int, Any]) -> dict[int, Any]:
    """Install ``handlers`` (signal → handler) and return the ones they replaced, to give
    back. A signal ignored when the program started (``nohup``, a script's ``annotate … &``)
    stays ignored, as POSIX programs keep it: the terminal's Ctrl-C is not for them."""
    previous = {number: signal.getsignal(number) for number in handlers}
    for number, handler in handlers.items():
        if previous[number] is not signal.SIG_IGN:
            signal.signal(number, handler)
    return previous


#: The ending signals the command's handlers saw, first first. The handler raises at once;
#: this is the backstop for when that exception is swallowed on the way (ONNX Runtime turns
#: a KeyboardInterrupt during its import into ImportError, and code that treats an
#: ImportError as "not installed" would go on): the run looks here before each frame.
RECEIVED: list[int] = []


def raise_received() -> None:
    """Raise the first signal recorded in :data:`RECEIVED` as the exception its handler raised."""
    if RECEIVED:
        from annotate.errors import Interrupted

        number = RECEIVED[0]
        if number == signal.SIGINT:
            raise KeyboardInterrupt
        raise Interrupted(signal.Signals(number).name, 128 + number)


class _Deferrer:
    """The handler :func:`signals_deferred` keeps installed: a signal that comes while a
    :func:`signals_held` block runs waits for its end; any other goes straight on to the
    handler it stands in front of."""

    def __init__(self) -> None:
        self.depth = 0
        self.pending: list[tuple[int, FrameType | None]] = []
        self.under: dict[int, Any] = {}

    def __call__(self, number: int, frame: FrameType | None) -> None:
        if self.depth:
            self.pending.append((number, frame))
        else:
            self.deliver(number, frame)

    def deliver(self, number: int, frame: FrameType | None) -> None:
        handler = self.under.get(number, signal.SIG_DFL)
        if callable(handler):
            handler(number, frame)
        elif handler == signal.SIG_DFL:
            signal.signal(number, signal.SIG_DFL)
            signal.raise_signal(number)

    def installed(self) -> bool:
        return bool(self.under) and all(signal.getsignal(s) is self for s in self.under)


_DEFERRER = _Deferrer()


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Keep the holding handler installed over a loop of held blocks (a run's frames), so
    that each :func:`signals_held` only counts instead of swapping every handler twice, a
    cost the in-order thread paid per frame (docs/performance.md, "GPU"). Main thread
    only; an ignored signal stays ignored."""
    if threading.current_thread() is not threading.main_thread() or _DEFERRER.installed():
        yield
        return
    replaced: dict[int, Any] = {}
    for number in HELD_SIGNALS:
        current = signal.getsignal(number)
        if current is not signal.SIG_IGN and current is not None:
            replaced[number] = current
    _DEFERRER.under = dict(replaced)
    try:
        for number in replaced:
            signal.signal(number, _DEFERRER)
        yield
    finally:
        for number, handler in replaced.items():
            if signal.getsignal(number) is _DEFERRER:
                signal.signal(number, handler)
        _DEFERRER.under = {}


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold back the signals that end a run until the block is done, then deliver the first.

    A frame's outputs (video, JSON Lines, MOT) are written one after another; a signal in
    between would leave the video a frame ahead of the JSON Lines. And a KeyboardInterrupt
    raised inside a library that catches everything (protobuf, under ``onnx``) would be
    lost. Signal handlers run only on the main thread; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    deferrer = _DEFERRER
    if deferrer.installed():
        deferrer.depth += 1
        try:
            yield
        finally:
            deferrer.depth -= 1
            if not deferrer.depth and deferrer.pending:
                number, where = deferrer.pending[0]
                deferrer.pending.clear()
                deferrer.deliver(number, where)
        return
    pending: list[tuple[int, FrameType | None]] = []
    previous = {s: signal.signal(s, lambda n, f: pending.append((n, f))) for s in HELD_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if pending:
            number, where = pending[0]
            handler = previous[number]
            if callable(handler):
                handler(number, where)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(number)
