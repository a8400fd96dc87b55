"""Who gets the cores: inference workers, ONNX Runtime, decoder and encoder threads."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from annotate import defaults
from annotate.providers import BATCHING

if TYPE_CHECKING:
    from annotate.pipeline.options import RunOptions


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class ThreadPlan:
    """Who gets the cores: inference workers, and threads for ONNX Runtime, decoder, encoder.

    ``workers`` threads share one session (ONNX Runtime's ``run`` is thread-safe; a second
    session would only hold a second copy of the weights and arena, ~14 MB); 0 means the
    sequential loop. ``None``/0 thread counts leave the choice to the library.
    """

    workers: int
    intra_op: int | None
    decode: int
    encode: int
    opencv: int | None = None  # OpenCV's own threads for resize/convert/draw calls
    #: The most frames per call of the process's inference service (an accelerator's plan);
    #: 0: no service, each worker runs the session itself.
    service_batch: int = 0
    #: x264 on frame threads rather than slice threads, where the model is off the cores and
    #: encoding is what binds (a GPU's plans); a live source keeps slices (no added delay).
    frame_encode: bool = False
    #: The video is encoded on a thread of its own (:mod:`annotate.sinks.background`), so
    #: encoding one frame overlaps drawing the next: where cores are to spare (4 or more,
    #: concurrent plans) the in-order tail that draws and writes is otherwise what binds.
    encode_apart: bool = False

    def describe(self) -> str:
        if not self.workers:
            return "sequential"
        threads = ("frame thread" if self.frame_encode else "thread") + "s" * (self.encode != 1)
        if self.encode_apart:
            threads += " fed by a thread of its own"
        if self.service_batch:
            return (
                f"inference service: one session, batches of up to {self.service_batch}, fed "
                f"by {self.workers} CPU workers (convert, letterbox, post-process), decoder "
                f"{self.decode or 'auto'} thread{'s' * (self.decode != 1)}, encoder "
                f"{self.encode or 'auto'} {threads}"
            )
        return (
            f"concurrent: {self.workers} inference worker{'s' * (self.workers > 1)} × "
            f"{self.intra_op} ONNX Runtime thread{'s' * (self.intra_op != 1)}, decoder "
            f"{self.decode or 'auto'} thread{'s' * (self.decode != 1)}, encoder "
            f"{self.encode or 'auto'} {threads}, OpenCV "
            f"{self.opencv or 'auto'} thread{'s' * (self.opencv != 1)}"
        )


#: The most inference workers the plan gives by itself (each holds frames in flight); more
#: workers beat fewer with more threads up to here (measured by ``scripts/throughput.py``:
#: docs/performance.md, "Why the thread plan is what it is").
MAX_WORKERS = 16
#: From this many cores the concurrent plans encode on a thread of their own: on 2 cores it
#: bought nothing with the model on the CPU (docs/performance.md, "Encoding apart").
ENCODE_APART_CORES = 4
#: The most ONNX Runtime threads the sequential loop gets: half the cores, up to here (same
#: study and section).
MAX_SEQUENTIAL_THREADS = 16


def spinning_for(plan: ThreadPlan) -> bool:
    """Whether ONNX Runtime's intra-op threads spin during a run, by mode (measurements:
    docs/performance.md, "Spinning per mode"; ``scripts/spinning.py``).

    The sequential loop (files, live sources, recordings alike) spins: each run's parallel
    steps then start without waking a sleeping thread, and the threads stop spinning as soon
    as the run returns, so decoding and x264 keep their cores between runs. The concurrent
    runner's single-threaded workers have no intra-op threads to spin; with ``--threads``
    several workers' spinning threads would take the cores from each other.
    """
    return not plan.workers


def plan_threads(options: RunOptions, cores: int) -> ThreadPlan:
    """The thread budget for this run; explicit options always win (measurements:
    docs/performance.md, "Why the thread plan is what it is"; ``scripts/throughput.py``).

    - One core: the sequential loop, one thread for each library (on a one-core machine
      that is each library's own default; a batch job with one core must not take more).
    - The sequential loop (``--sequential``, live sources): ONNX Runtime gets half the cores,
      at least 2 and at most 16, spinning during runs; the decoder and x264 have the rest.
    - Otherwise inference workers of one intra-op thread each, which beat fewer workers with
      several threads on a model this small: two on 2-3 cores, then one per two cores up to
      sixteen; beyond 32 cores the sixteen get more threads each.
    - One decoder thread: the decoder already has a thread of its own, and FFmpeg's frame
      threads add memory and take cores from inference while decoding is far faster. On a
      GPU the cores are free of the model and one decoding thread is what binds (on the
      H200 it was busy 83 % of a ``--json`` run, the workers waiting on it): it gets the
      service plan's frame threads.
    - x264: two threads on 2-3 cores, one per two cores from 4 to 16, one per core above
      (below its own default of 1.5 per core); slice threads, except on a GPU, where the
      model is off the cores and x264 is what binds: frame threads (memory and a frame of
      delay per thread, for a file only: a live source switches to the sequential plan).
    - From 4 cores the video is encoded on a thread of its own, fed by the in-order tail
      (track, draw), which would otherwise wait for each frame's encoding.
    - OpenCV's calls on their calling thread: the stages are already parallel.
    - ``--batch N`` on a batching accelerator (CUDA, TensorRT …:
      :data:`annotate.providers.BATCHING`): one inference service runs every frame on the
      device in batches, so the cores go to the CPU side (:func:`plan_service`). Without
      it the GPU gets the workers' plan: on the H200 that beat the service for YOLOX-Nano
      (docs/performance.md, "GPU").
    Live and still sources switch to the sequential loop once opened (see ``run``).
    """
    session, encode = options.session, options.encode
    resolution = options.resolution
    batching = resolution is not None and resolution.preferred in BATCHING
    if batching and (options.batch or 1) > 1 and not options.sequential:
        return plan_service(options, cores)
    if cores == 1 and options.workers is None:
        return ThreadPlan(
            0, session.threads or 1, options.decode_threads or 1, encode.threads or 1, 1
        )
    if options.sequential:
        intra_op = session.threads or min(cores, max(2, cores // 2), MAX_SEQUENTIAL_THREADS)
        return ThreadPlan(0, intra_op, options.decode_threads, encode.threads)
    workers = options.workers or max(2, min(MAX_WORKERS, cores // 2))
    intra_op = session.threads or max(1, (cores - 1) // workers)
    encode_threads = encode.threads or (max(2, cores // 2) if cores <= 16 else cores)
    decode = options.decode_threads or (service_decoder(cores) if batching else 1)
    return ThreadPlan(workers, intra_op, decode, encode_threads, 1, frame_encode=batching,
                      encode_apart=cores >= ENCODE_APART_CORES)  # fmt: skip


def service_decoder(cores: int) -> int:
    """FFmpeg's frame threads where a GPU runs the model: one per four cores, 2 to 4."""
    return max(2, min(4, cores // 4))


def plan_service(options: RunOptions, cores: int) -> ThreadPlan:
    """The plan around an accelerator's inference service: the device runs the model, so
    the cores do the CPU side, each stage spread so that none is serial by accident.

    - A CPU worker per core (at least 4, at most 32) converts, letterboxes and
      post-processes; each has one frame at the device at a time, so they also bound the
      service's batches.
    - The decoder gets FFmpeg's frame threads (one per four cores, 2 to 4): with the model
      off the cores, one decoding thread would be what binds.
    - x264 as in the CPU plan; ONNX Runtime's own threads (for any node the device does
      not take) sleep between runs.
    """
    session, encode = options.session, options.encode
    workers = options.workers or max(4, min(32, cores))
    decode = options.decode_threads or service_decoder(cores)
    encode_threads = encode.threads or (max(2, cores // 2) if cores <= 16 else cores)
    intra_op = session.threads or max(1, min(4, cores // 4))
    batch = options.batch or 1
    return ThreadPlan(workers, intra_op, decode, encode_threads, 1, service_batch=batch,
                      frame_encode=True, encode_apart=cores >= ENCODE_APART_CORES)  # fmt: skip


#: Several sources on a batching accelerator, --processes not given: a process for each
#: this many sources, each batching them, and no more processes than one per
#: ``CORES_PER_PROCESS`` cores (docs/performance.md, "Many cameras in one process").
SOURCES_PER_PROCESS = 8
CORES_PER_PROCESS = 4


def split_sources(
    sources: int, cores: int, provider: str, batch: int | None
) -> tuple[int, int | None]:
    """(processes, batch) for ``sources`` run together when ``--processes`` is not given.

    On a GPU one process's Python work (letterbox, tracking, JSON, under one GIL) binds
    long before the GPU does, and processes that share the GPU, each batching its own
    sources, keep more cameras (docs/performance.md, "Many cameras in one process"). So
    with more than 8 sources on a batching accelerator and 8 cores or more: a process per 8
    sources, up to one per 4 cores, each batching up to 8 frames unless ``batch`` says
    otherwise. Anywhere else one process, which on the CPU keeps the most (a model each
    would only copy it).
    """
    if provider not in BATCHING or cores < 2 * CORES_PER_PROCESS:
        return 1, batch
    processes = min(cores // CORES_PER_PROCESS, -(-sources // SOURCES_PER_PROCESS))
    if processes < 2:
        return 1, batch
    return processes, batch or min(SOURCES_PER_PROCESS, -(-sources // processes))


def plan_jobs(cores: int, jobs: int | None, inputs: int | None = None) -> tuple[int, int]:
    """(worker processes, cores for each) for a batch of ``inputs`` on ``cores``; each job
    plans its own threads within its share (:func:`plan_threads`), so together they never
    oversubscribe.

    By default one job per ``BATCH_CORES_PER_JOB`` cores (many short clips: the jobs'
    start-up and finishing overlap), but no more than one per ``BATCH_INPUTS_PER_JOB``
    inputs (a few long videos: each gets all the cores in turn); see :mod:`annotate.defaults`.
    """
    if jobs is None:
        jobs = max(1, cores // defaults.BATCH_CORES_PER_JOB)
        if inputs is not None:
            jobs = max(1, min(jobs, math.ceil(inputs / defaults.BATCH_INPUTS_PER_JOB)))
    return jobs, max(1, cores // jobs)
