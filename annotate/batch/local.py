"""Jobs on worker processes of this machine (``concurrent.futures``); each worker loads the
model once and keeps it for every job it is given."""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from annotate.batch.events import GRACE_S, Event, Finished, Started, from_update, started
from annotate.batch.inputs import Job
from annotate.batch.job import Batch, job_key, run_job, worker_logging
from annotate.batch.manifest import Record
from annotate.signals import HELD_SIGNALS

POLL_S = 0.2

# Set in each worker process by _start_worker.
_batch: Batch | None = None
_stop: Any = None
_updates: Any = None


def _start_worker(batch: Batch, stop: Any, updates: Any) -> None:
    global _batch, _stop, _updates
    # Ctrl-C (and a SIGTERM or SIGHUP to the whole group) reaches every process of the
    # group: the driver alone decides, and tells the workers through ``stop``, so each
    # removes its partial outputs. SIGINT was blocked while this process started.
    for number in HELD_SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    worker_logging()
    _batch, _stop, _updates = batch, stop, updates


def _report(index: int, frames: int, total: int | None) -> None:
    _updates.put((index, frames, total))


def take(job: Job) -> None:
    """Tell the driver this worker took ``job``: if the process dies, the job is suspect."""
    _updates.put(started(job.index))


def _run(job: Job) -> Record:
    assert _batch is not None
    take(job)
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

    def __init__(
        self, batch: Batch, jobs: int, task: Callable[[Job], Record] | None = None
    ) -> None:
        self.batch, self.jobs = batch, jobs
        self.task = task or _run  # a module-level function (pickled by name for the workers)
        ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self.ctx = ctx
        self.stop_flag = ctx.Event()
        # Written by each put (no feeder thread), so a job's start is known before its
        # process can die.
        self.updates = ctx.SimpleQueue()

    @property
    def stopping(self) -> bool:
        return self.stop_flag.is_set()

    def stop(self) -> None:
        self.stop_flag.set()

    def run(self, jobs: Sequence[Job]) -> Iterator[Event]:
        todo = list(jobs)
        suspects: list[Job] = []
        while (todo or suspects) and not self.stopping:
            if todo:
                died, todo = yield from self._round(todo, self.jobs)
                suspects += died
                continue
            job = suspects.pop(0)
            died, _ = yield from self._round([job], 1)
            if died:
                why = (
                    "the worker process died on this input (a crash in a decoder or "
                    "library, or out of memory)"
                )
                yield Finished(
                    Record(job_key(job), "failed", error=why, settings_id=self.batch.settings_id)
                )

    def _round(
        self, jobs: Sequence[Job], workers: int
    ) -> Generator[Event, None, tuple[list[Job], list[Job]]]:
        """Run ``jobs`` on a fresh pool. If a worker died, returns the jobs that had started
        and not finished (one of them killed it) and those not started yet."""
        taken: set[int] = set()
        with _sigint_blocked():
            pool = ProcessPoolExecutor(
                max_workers=min(workers, len(jobs)),
                mp_context=self.ctx,
                initializer=_start_worker,
                initargs=(self.batch, self.stop_flag, self.updates),
            )
            futures: dict[Future[Record], Job] = {pool.submit(self.task, job): job for job in jobs}
        # Every worker has started (one per submit, up to the pool's size); shutdown() forgets
        # them, and a stop may need to kill them after it.
        processes = list((getattr(pool, "_processes", None) or {}).values())
        # shutdown(wait=False) forgets its manager thread too; it is joined below, because if
        # it were still closing its wake-up pipe when the interpreter exits, Python before
        # 3.12.8 can write to the closed pipe from its exit hook (a traceback after Ctrl-C).
        manager = getattr(pool, "_executor_manager_thread", None)
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
                yield from self._drain(taken)
                for future in done:
                    job = futures.pop(future)
                    if future.cancelled():
                        continue
                    error = future.exception()
                    if isinstance(error, BrokenProcessPool):
                        broken.append(job)
                    elif error is not None:
                        why = f"{type(error).__name__}: {error}"
                        record = Record(
                            job_key(job), "failed", error=why, settings_id=self.batch.settings_id
                        )
                        yield Finished(record)
                    else:
                        yield Finished(future.result())
        finally:
            # A broken pool's own clean-up terminates (SIGTERM) and then joins its workers,
            # which ignore SIGTERM (the driver decides on stops): they are killed here.
            if futures or broken:
                _kill(pool, processes)
            else:
                pool.shutdown(wait=True)
            if manager is not None:
                manager.join(timeout=GRACE_S)
        yield from self._drain(taken)
        if not broken or self.stopping:
            return [], []
        died = [job for job in broken if job.index in taken]
        return died, [job for job in broken if job.index not in taken]

    def _drain(self, taken: set[int]) -> Iterator[Event]:
        while not self.updates.empty():
            event = from_update(*self.updates.get())
            if isinstance(event, Started):
                taken.add(event.job)
            yield event


def _kill(pool: ProcessPoolExecutor, processes: list[multiprocessing.process.BaseProcess]) -> None:
    """End the pool now: workers still running after the grace period are killed (SIGKILL:
    they ignore SIGTERM); the driver removes what they leave."""
    for process in processes:
        if process.is_alive():
            process.kill()
    pool.shutdown(wait=True, cancel_futures=True)
