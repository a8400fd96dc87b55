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
