"""Signals held while a frame is written: delivered after the block, once, to the handler the
program installed; the handlers given back afterwards."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

import pytest

from annotate.signals import signals_deferred, signals_held


@pytest.fixture
def heard() -> Iterator[list[int]]:
    got: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda number, frame: got.append(number))
    yield got
    signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize("deferred", [False, True])
def test_a_signal_in_a_held_block_waits_for_its_end(heard: list[int], deferred: bool) -> None:
    handler = signal.getsignal(signal.SIGTERM)
    with signals_deferred() if deferred else contextlib.nullcontext():
        with signals_held():
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGTERM)
            assert heard == []
        assert heard == [signal.SIGTERM]  # the first, once
        signal.raise_signal(signal.SIGTERM)  # between blocks: at once
        assert heard == [signal.SIGTERM] * 2
    assert signal.getsignal(signal.SIGTERM) is handler


def test_deferred_handler_raises_between_frames_and_is_given_back() -> None:
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), signals_deferred():
        assert signal.getsignal(signal.SIGINT) is not before
        with signals_held():
            signal.raise_signal(signal.SIGINT)
        pytest.fail("the held SIGINT was not raised at the block's end")
    assert signal.getsignal(signal.SIGINT) is before


def test_an_ignored_signal_stays_ignored() -> None:
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with signals_deferred():
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
            with signals_held():
                signal.raise_signal(signal.SIGTERM)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_handler_replaced_inside_is_not_overwritten(heard: list[int]) -> None:
    mine: list[int] = []
    with signals_deferred():
        signal.signal(signal.SIGTERM, lambda number, frame: mine.append(number))
        with signals_held():  # no longer the deferrer's: held the swapping way
            signal.raise_signal(signal.SIGTERM)
            assert mine == []
        assert mine == [signal.SIGTERM]
    signal.raise_signal(signal.SIGTERM)
    assert mine == [signal.SIGTERM] * 2 and heard == []
