"""Fixtures, and the skip of tests marked ``shared`` (they read the real model and media in
../shared) in a clone without it, so everything else still runs. Helpers are in
``tests/helpers.py``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import HAVE_SHARED, MODEL, SHARED, Result, make_clip


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HAVE_SHARED:
        return
    skip = pytest.mark.skip(reason=f"needs the shared model and media at {SHARED}")
    for item in items:
        if item.get_closest_marker("shared") is not None:
            item.add_marker(skip)


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C as a terminal gives it. A suite started in the background of a script (``cmd
    &``, as CI runners may) inherits SIGINT ignored, and so would every ``annotate`` the
    tests start, which keeps a signal that was ignored when it started ignored, as POSIX
    programs do: the tests that press Ctrl-C would then test nothing."""
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _annotate_logger_restored():
    """Each test gets the 'annotate' logger as it was: the CLI (``setup_logging``) and a batch
    worker run in-process stop it propagating, which would hide later tests' records from
    ``caplog`` (whether they were hidden depended on which tests ran before)."""
    log = logging.getLogger("annotate")
    saved = (list(log.handlers), log.level, log.propagate)
    yield
    log.handlers[:], log.level, log.propagate = saved[0], saved[1], saved[2]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run ``annotate`` in-process with the given args; returns exit code and output."""
    from annotate.cli import main

    def invoke(*args: str | Path) -> Result:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


@pytest.fixture(scope="session")
def detector():
    from annotate.detector import Detector
    from annotate.providers import PlatformInfo, resolve

    resolution = resolve("cpu", "test", PlatformInfo("Linux", "x86_64"), ["CPUExecutionProvider"])
    return Detector.load(MODEL, resolution)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64x64 YOLOX-layout graph that finds one 'person' (score 0.9) in the top-left corner
    of any picture, in microseconds: for tests of the pipeline's mechanics, not of detection."""
    from annotate.testing.models import constant_model

    out = np.zeros((1, 8 * 8 + 4 * 4 + 2 * 2, 85), np.float32)
    out[0, 0, :6] = [0.5, 0.5, 0, 0, 1.0, 0.9]  # first anchor, stride 8: centre 4, size 8
    return constant_model(tmp_path_factory.mktemp("tiny") / "tiny.onnx", out, [1, 3, 64, 64])


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 frames of a moving bar, 160x120 at 25 FPS, each frame different."""
    return make_clip(tmp_path_factory.mktemp("clip") / "bar.mp4", 200)
