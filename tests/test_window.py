"""The preview window for real, on a virtual screen (Xvfb), driven by xdotool: ``q`` and Esc
stop the run cleanly and the output is finalised."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from tests.helpers import MODEL, ROOT, VIDEOS, decode_video

TOOLS = all(shutil.which(t) for t in ("Xvfb", "xdotool"))


@pytest.fixture
def display():
    """A fresh virtual screen, numbered by Xvfb itself: ``-displayfd`` picks a free display
    and writes its number only once the server accepts clients, so a slow CI machine or a
    display left by the previous test cannot make the window fail to open. ``-noreset``:
    by default Xvfb resets whenever its last client leaves, and a client that connects
    during the reset is dropped. ``xdotool search`` polls by connecting and leaving, so the
    run's window could lose that race (CI, 2026-12-07: "could not connect to display")."""
    read_end, write_end = os.pipe()
    options = ["-screen", "0", "1280x800x24", "-nolisten", "tcp", "-noreset"]
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=(write_end,),
    )
    os.close(write_end)
    with os.fdopen(read_end) as ready:
        number = ready.readline().strip()
    assert number, "Xvfb did not start"
    yield f":{number}"
    server.terminate()
    server.wait(timeout=5)


def _wait_for_window(proc, env, name):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.3)
        found = subprocess.run(["xdotool", "search", "--name", name], env=env,
                               capture_output=True, text=True)  # fmt: skip
        if found.stdout.split():
            return found.stdout.split()[0]
        if proc.poll() is not None:
            break
    proc.kill()
    pytest.fail(f"no window appeared; the run said: {proc.communicate()[1][-2000:]}")


def _press_until_it_stops(proc, env, window, key, presses=5):
    """Focus the window and press ``key`` as a user would, again after 2 s if the run goes
    on: an X key event can be lost before the window takes input (once in a full suite,
    2026-12-07, the run played to its end), and a lost event is not what these tests test.
    Returns the run's stderr."""
    subprocess.run(["xdotool", "windowfocus", "--sync", window], env=env, capture_output=True)
    for _ in range(presses):
        subprocess.run(["xdotool", "key", "--window", window, key], env=env, check=True)
        try:
            return proc.communicate(timeout=2)[1]
        except subprocess.TimeoutExpired:
            continue
    return proc.communicate(timeout=30)[1]


@pytest.mark.skipif(not TOOLS, reason="needs Debian's xvfb and xdotool (.ci/run installs them)")
@pytest.mark.parametrize("key", ["q", "Escape"])
@pytest.mark.shared
def test_key_stops_the_run_and_finalises_output(display, tmp_path, key):
    out = tmp_path / "window.mp4"
    env = {**os.environ, "DISPLAY": display}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "annotate",
            "run",
            str(VIDEOS / "one-by-one-person-detection.mp4"),
            "--show",
            "-o",
            str(out),
            "--model",
            str(MODEL),
        ],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    window = _wait_for_window(proc, env, "annotate - ")
    time.sleep(1)
    err = _press_until_it_stops(proc, env, window, key)
    assert proc.returncode == 0, err
    assert "Stopped early: key pressed" in err
    frames = len(decode_video(out)[2])
    assert 10 < frames < 1394


@pytest.mark.skipif(not TOOLS, reason="needs Debian's xvfb and xdotool (.ci/run installs them)")
@pytest.mark.shared
def test_several_sources_share_one_window_and_q_stops_them_all(display, tmp_path):
    env = {**os.environ, "DISPLAY": display}
    clip = str(VIDEOS / "one-by-one-person-detection.mp4")
    proc = subprocess.Popen(
        [sys.executable, "-m", "annotate", "run", clip, clip, "--show", "-o", f"{tmp_path}/",
         "--model", str(MODEL)],
        stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
    )  # fmt: skip
    window = _wait_for_window(proc, env, "annotate - 2 sources")
    geometry = subprocess.run(["xdotool", "getwindowgeometry", window], env=env,
                              capture_output=True, text=True).stdout  # fmt: skip
    time.sleep(1)
    err = _press_until_it_stops(proc, env, window, "q")
    assert proc.returncode == 0, err
    assert "Geometry: 1280x360" in geometry  # two 640x360 tiles side by side
    for name in ("one-by-one-person-detection", "one-by-one-person-detection-2"):
        assert 10 < len(decode_video(tmp_path / f"{name}.mp4")[2]) < 1394
    assert err.count("key pressed") == 2, err  # each source's row says what stopped it


def test_the_grid_has_its_final_size_before_every_source_has_started():
    """The window is laid out for every source at once: a second camera that opens later
    does not make it jump (read from outside, the first size is the one a user sees)."""
    import numpy as np

    from annotate.sinks.window import WindowGrid
    from annotate.stats import LiveStats

    grid = WindowGrid("annotate - 2 sources", slots=2)
    grid.add_source("front", LiveStats())
    grid.put("front", np.full((720, 1280, 3), 200, np.uint8))
    first = grid.compose()
    grid.add_source("back", LiveStats())
    assert first.shape == grid.compose().shape == (360, 1280, 3)
    assert first[200, 320].mean() > 150 and first[200, 960].max() == 0  # the second is empty
