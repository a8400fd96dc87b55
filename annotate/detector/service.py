"""One inference service per process for accelerator providers: one session (one CUDA
context and memory arena), fed by every worker thread, run in batches.

Workers letterbox their frames on the CPU side in parallel and each hands one canvas to
:meth:`InferenceService.infer`, which blocks until that canvas's output is back. A single
thread gathers the waiting canvases into one batch and runs it, so the accelerator sees
batches as large as the workers keep it fed, while a lone live source waits for one
inference only:

- **Bounded waits**: once one canvas waits, the batch runs as soon as it is full, or no
  more than ``wait_s`` later, whichever comes first; canvases that arrive while a batch runs
  make up the next one, so under load batches fill without any waiting.
- **Shapes**: canvases of another shape (another source's fitted canvas) go in the next
  batch; padding to the accelerator's fixed batch sizes (``sizes``) is done with copies of
  the last canvas, whose outputs are dropped.
- **Errors**: an inference error is raised in every caller of that batch; :meth:`close`
  fails every waiting and later caller, so no worker blocks for ever.
- **No allocation per call**: ``run`` gets a reused host buffer per batch size.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

log = logging.getLogger("annotate")

#: The longest a canvas waits for others to join its batch (see the module's docstring).
WAIT_S = 0.002


class ServiceClosedError(RuntimeError):
    """The service stopped before this canvas was run."""


@dataclass
class _Request:
    canvas: npt.NDArray[np.generic]
    arrived: float
    done: threading.Event = field(default_factory=threading.Event)
    output: npt.NDArray[np.float32] | None = None
    error: BaseException | None = None


@dataclass
class ServiceStats:
    """What the service did: for ``-v`` and ``annotate bench``."""

    batches: int = 0
    images: int = 0
    padded: int = 0  # canvases added to reach a fixed batch size
    busy_s: float = 0.0  # seconds inside ``run``
    largest: int = 0

    @property
    def mean_batch(self) -> float:
        return self.images / self.batches if self.batches else 0.0


def bucket(n: int, sizes: Sequence[int]) -> int:
    """The smallest of ``sizes`` that holds ``n`` (``n`` itself if none does or none given)."""
    for size in sizes:
        if size >= n:
            return size
    return n


class InferenceService:
    """Batches canvases from many threads into calls of ``run``.

    ``run`` takes a batch ``[N, …]`` (a reused buffer: it must not keep it) and returns an
    output whose first axis is per image. ``max_batch`` is the most canvases per call;
    ``sizes`` (ascending) the batch sizes ``run`` is called with, where an accelerator
    prepares one plan per input shape (cuDNN's algorithm search, TensorRT's engines).
    """

    def __init__(
        self,
        run: Callable[[npt.NDArray[np.generic]], npt.NDArray[np.float32]],
        max_batch: int,
        wait_s: float = WAIT_S,
        sizes: Sequence[int] = (),
        name: str = "inference",
    ) -> None:
        self._run = run
        self.max_batch = max(1, max_batch)
        self.wait_s = wait_s
        self.sizes = tuple(s for s in sorted(set(sizes)) if s <= self.max_batch)
        self.stats = ServiceStats()
        self._waiting: deque[_Request] = deque()
        self._lock = threading.Condition()
        self._closed = False
        self._buffers: dict[tuple[int, ...], npt.NDArray[np.generic]] = {}
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def widen(self, max_batch: int, sizes: Sequence[int] = ()) -> None:
        """From the next batch on, up to ``max_batch`` canvases, padded to ``sizes``."""
        with self._lock:
            self.max_batch = max(1, max_batch)
            self.sizes = tuple(s for s in sorted(set(sizes)) if s <= self.max_batch)

    def infer(self, canvas: npt.NDArray[np.generic]) -> npt.NDArray[np.float32]:
        """One image's output (its batch axis kept, of 1), computed in some batch."""
        if canvas.shape[0] != 1:
            raise ValueError(f"one canvas at a time, got a batch of {canvas.shape[0]}")
        request = _Request(canvas, time.perf_counter())
        with self._lock:
            if self._closed:
                raise ServiceClosedError("the inference service is closed")
            self._waiting.append(request)
            self._lock.notify_all()
        request.done.wait()
        if request.error is not None:
            raise request.error
        assert request.output is not None
        return request.output

    def close(self) -> None:
        """Stop the service; canvases still waiting fail with :class:`ServiceClosedError`."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._thread.join(timeout=10)
        with self._lock:
            while self._waiting:
                request = self._waiting.popleft()
                request.error = ServiceClosedError("the inference service closed")
                request.done.set()

    def __enter__(self) -> InferenceService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _gather(self) -> list[_Request]:
        """The next batch: waits for a first canvas, then up to ``wait_s`` for it to fill."""
        with self._lock:
            while not self._waiting and not self._closed:
                self._lock.wait(timeout=0.1)
            if self._closed:
                return []
            deadline = self._waiting[0].arrived + self.wait_s
            while len(self._waiting) < self.max_batch and not self._closed:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self._lock.wait(timeout=left)
            shape = self._waiting[0].canvas.shape
            batch: list[_Request] = []
            kept: deque[_Request] = deque()
            while self._waiting and len(batch) < self.max_batch:
                request = self._waiting.popleft()
                (batch if request.canvas.shape == shape else kept).append(request)
            kept.extend(self._waiting)
            self._waiting = kept
            return batch

    def _buffer(self, n: int, shape: tuple[int, ...], dtype: np.dtype[np.generic]) -> np.ndarray:
        key = (n, *shape, dtype.num)
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = np.empty((n, *shape), dtype)
        return buffer

    def _serve(self) -> None:
        while True:
            batch = self._gather()
            if not batch:
                return
            n = len(batch)
            size = bucket(n, self.sizes)
            first = batch[0].canvas
            blob = self._buffer(size, first.shape[1:], first.dtype)
            for i, request in enumerate(batch):
                blob[i] = request.canvas[0]
            if size > n:
                blob[n:] = blob[n - 1]
            started = time.perf_counter()
            try:
                output = self._run(blob)
                if output.shape[0] != size:
                    raise RuntimeError(
                        f"a batch of {size} gave output {list(output.shape)}: "
                        "not one output per image"
                    )
            except BaseException as e:  # every caller of this batch sees it
                for request in batch:
                    request.error = e
                    request.done.set()
                continue
            finally:
                stats = self.stats
                stats.busy_s += time.perf_counter() - started
            stats.batches += 1
            stats.images += n
            stats.padded += size - n
            stats.largest = max(stats.largest, n)
            for i, request in enumerate(batch):
                request.output = output[i : i + 1].copy()
                request.done.set()
