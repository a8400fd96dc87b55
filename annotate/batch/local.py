"""Jobs on worker processes of this machine (``concurrent.futures``); each worker loads the
model once and keeps it for every job it is given."""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import signal
import time
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from annotate.batch.events import Event, Finished, Progress, Started
from annotate.batch.inputs import Job
from annotate.batch.job import Batch, job_key, run_job, worker_logging
from annotate.batch.manifest import Record

POLL_S = 0.2
#: Seconds that jobs in flight get to stop (and clean up) after a stop, before their
#: processes are killed.
GRACE_S = 5.0

# Set in each worker process by _start_worker.
_batch: Batch | None = None
_stop: Any = None
_updates: Any = None


def _start_worker(batch: Batch, stop: Any, updates: Any) -> None:
    global _batch, _stop, _updates
    # Ctrl-C reaches every process of the terminal's group: the driver alone decides, and
    # tells the workers through ``stop``. SIGINT was blocked while this process started.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    worker_logging()
    _batch, _stop, _updates = batch, stop, updates


def _report(index: int, frames: int, total: int | None) -> None:
    _updates.put((index, frames, total))


def _run(job: Job) -> Record:
    assert _batch is not None
    _updates.put((job.index, -1, None))  # started: if the process dies, this job is suspect
    return run_job(job, _batch, _stop, _report)


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Worker processes start with SIGINT blocked (a mask survives fork and exec), so a
    Ctrl-C while one is importing is never its traceback; the driver gets it when unblocked."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class LocalPool:
    """``jobs`` worker processes. A worker that dies (a decoder crash, the OOM killer) takes
    only its own video down: the jobs it might have been running are retried one at a time,
    and one that kills its worker again is ``failed``."""

    def __init__(self, batch: Batch, jobs: int) -> None:
        self.batch, self.jobs = batch, jobs
        ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self.ctx = ctx
        self.stop_flag = ctx.Event()
        self.updates = ctx.Queue()
        self.stopping = False

    def stop(self) -> None:
        self.stopping = True
        self.stop_flag.set()

    def run(self, jobs: Sequence[Job]) -> Iterator[Event]:
        todo = list(jobs)
        suspects: list[Job] = []
        while todo or suspects:
            if self.stopping:
                return
            if todo:
                died = yield from self._round(todo, self.jobs)
                todo = []
                suspects += died
            else:
                job = suspects.pop(0)
                died = yield from self._round([job], 1)
                if died:
                    yield Finished(Record(input=job_key(job), status="failed",
                                          settings_id=self.batch.settings_id,
                                          error="the worker process died on this input "
                                                "(a crash in a decoder or library, or out of "
                                                "memory)"))  # fmt: skip

    def _round(self, jobs: Sequence[Job], workers: int) -> Generator[Event, None, list[Job]]:
        """Run ``jobs`` on a fresh pool; returns the jobs in flight if a worker died (the
        jobs not started yet are run again by the caller's next round)."""
        started: set[int] = set()
        with _sigint_blocked():
            pool = ProcessPoolExecutor(
                max_workers=min(workers, len(jobs)), mp_context=self.ctx,
                initializer=_start_worker, initargs=(self.batch, self.stop_flag, self.updates),
            )  # fmt: skip
            futures: dict[Future[Record], Job] = {pool.submit(_run, job): job for job in jobs}
        broken: list[Job] = []
        deadline: float | None = None
        try:
            while futures:
                if self.stopping and deadline is None:
                    deadline = time.monotonic() + GRACE_S
                    pool.shutdown(wait=False, cancel_futures=True)
                if deadline is not None and time.monotonic() > deadline:
                    break
                done, _ = wait(futures, timeout=POLL_S, return_when=FIRST_COMPLETED)
                yield from self._drain(started)
                for future in done:
                    job = futures.pop(future)
                    if future.cancelled():
                        continue
                    error = future.exception()
                    if isinstance(error, BrokenProcessPool):
                        broken.append(job)
                    elif error is not None:
                        why = f"{type(error).__name__}: {error}"
                        record = Record(job_key(job), "failed", error=why,
                                        settings_id=self.batch.settings_id)  # fmt: skip
                        yield Finished(record)
                    else:
                        yield Finished(future.result())
        finally:
            if futures:
                _kill(pool)
            else:
                pool.shutdown(wait=True)
        yield from self._drain(started)
        if not broken or self.stopping:
            return []
        died = [job for job in broken if job.index in started]
        rest = [job for job in broken if job.index not in started]
        if rest:
            died += yield from self._round(rest, workers)
        return died

    def _drain(self, started: set[int]) -> Iterator[Event]:
        while True:
            try:
                index, frames, total = self.updates.get_nowait()
            except (queue.Empty, OSError, ValueError):
                return
            if frames < 0:
                started.add(index)
                yield Started(index)
            else:
                yield Progress(index, frames, total)


def _kill(pool: ProcessPoolExecutor) -> None:
    """End the pool now: workers still running after the grace period are killed."""
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14
    if terminate is not None:
        terminate()
    else:
        for process in list(getattr(pool, "_processes", {}).values()):
            if process.is_alive():
                process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)
