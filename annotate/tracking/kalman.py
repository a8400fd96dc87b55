"""A constant-velocity Kalman filter over many boxes at once.

State per box: centre x, centre y, width, height and their rates of change, in pixels and
pixels per second. Time steps come from frame timestamps, so dropped frames, variable frame
rates and seeks predict the right distance. All boxes are filtered together as ``(n, 8)``
means and ``(n, 8, 8)`` covariances: one matrix product per frame instead of one per track.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

#: Noise is stated per nominal frame of 1/30 s and scaled by the time step, so a filter fed at
#: 10 FPS or 60 FPS expects the same motion per second. The weights are relative to the box
#: height, as in ByteTrack (position 1/20, velocity 1/160 of the height per frame).
FRAME_S = 1 / 30
POSITION_STD = 1 / 20
VELOCITY_STD = 1 / 160
MEASUREMENT_STD = 1 / 20

#: Where ``dt`` sits in the transition: each of cx, cy, w, h moves by its rate times dt.
_POSITION, _VELOCITY = np.arange(4), np.arange(4, 8)
_DIAGONAL = np.arange(8)
#: Process noise variance per nominal frame, per unit of box height squared.
_Q_PER_FRAME = np.array([POSITION_STD**2] * 4 + [(VELOCITY_STD / FRAME_S) ** 2] * 4)


def xyxy_to_state(xyxy: Array) -> Array:
    """``(n, 4)`` x1, y1, x2, y2 → ``(n, 4)`` cx, cy, w, h."""
    wh = xyxy[:, 2:] - xyxy[:, :2]
    return np.hstack([xyxy[:, :2] + wh / 2, wh])


def state_to_xyxy(state: Array) -> Array:
    """``(n, ≥4)`` cx, cy, w, h, … → ``(n, 4)`` x1, y1, x2, y2."""
    centre, wh = state[:, :2], np.maximum(state[:, 2:4], 1.0)
    return np.hstack([centre - wh / 2, centre + wh / 2])


def _heights(mean: Array) -> Array:
    return np.maximum(mean[:, 3], 1.0)


def initiate(boxes: Array) -> tuple[Array, Array]:
    """New tracks at rest on ``boxes`` (xyxy), uncertain about their speed."""
    n = len(boxes)
    mean = np.zeros((n, 8))
    mean[:, :4] = xyxy_to_state(boxes)
    h = _heights(mean)[:, None]
    std = np.hstack(
        [2 * POSITION_STD * h * np.ones((n, 4)), 10 * VELOCITY_STD / FRAME_S * h * np.ones((n, 4))]
    )
    cov = np.zeros((n, 8, 8))
    idx = np.arange(8)
    cov[:, idx, idx] = std**2
    return mean, cov


def predict(mean: Array, cov: Array, dt: float) -> tuple[Array, Array]:
    """Move every box ``dt`` seconds along its velocity; uncertainty grows with ``dt``."""
    if len(mean) == 0 or dt <= 0:
        return mean, cov
    f = np.eye(8)
    f[_POSITION, _VELOCITY] = dt
    mean = mean @ f.T
    h2 = _heights(mean)[:, None] ** 2
    q = h2 * (_Q_PER_FRAME * (dt / FRAME_S))  # (n, 8): the diagonal's growth
    cov = f @ cov @ f.T
    cov[:, _DIAGONAL, _DIAGONAL] += q
    return mean, cov


def update(mean: Array, cov: Array, boxes: Array) -> tuple[Array, Array]:
    """Correct each track (row) with its matched box (xyxy, same row)."""
    if len(mean) == 0:
        return mean, cov
    z = xyxy_to_state(boxes)
    h = np.maximum(z[:, 3], 1.0)
    r = np.zeros((len(mean), 4, 4))
    idx = np.arange(4)
    r[:, idx, idx] = (MEASUREMENT_STD * h[:, None]) ** 2
    # The box is the state's first four entries: H P Hᵀ, P Hᵀ and H P are slices of P.
    s = cov[:, :4, :4] + r  # (n, 4, 4)
    gain = cov[:, :, :4] @ np.linalg.inv(s)  # (n, 8, 4)
    innovation = z - mean[:, :4]
    mean = mean + (gain @ innovation[:, :, None])[:, :, 0]
    cov = cov - gain @ cov[:, :4, :]
    return mean, cov
