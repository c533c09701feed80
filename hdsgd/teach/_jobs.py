"""Background Monte Carlo for the teaching page: one thread per job, seeds run in small chunks
with ``hdsgd.simulate``, progress read by polling, cancellation between chunks.

Chunk c of a run uses the key ``jax.random.fold_in(key, c)``, exactly as
``hdsgd.simulate(..., checkpoint=FOLDER, chunk_seeds=chunk)`` does, so "copy as Python" can
write the same numbers as a plain call.
"""

from __future__ import annotations

import itertools
import threading
import time
import traceback
from typing import Any, Callable

#: at most this many steps x dimension x samples per step of work in one chunk (a job can
#: stop only between chunks; a chunk of this size takes a few seconds on a 2-core CPU)
WORK_PER_CHUNK = 2.5e8
KEEP_FINISHED = 16


def chunk_size(setup, horizon: float, dim, most: int) -> int:
    """Seeds per chunk: the largest power of two <= ``most`` whose work fits `WORK_PER_CHUNK`
    (at least 1)."""
    steps = float(setup.output_steps(horizon)[-1])
    work = steps * float(dim or 1) * float(setup.samples_per_step)
    chunk = 1
    while chunk * 2 <= most and chunk * 2 * work <= WORK_PER_CHUNK:
        chunk *= 2
    return chunk


class Cancelled(Exception):
    """Raised inside a job's thread when it has been cancelled."""


class Job:
    """One background run. ``work(job)`` does the work, calling `job.step` between chunks and
    `job.publish` with partial results; its return value is the final result."""

    def __init__(self, job_id: str, work: Callable[["Job"], Any], total: float):
        self.id = job_id
        self._work = work
        self.total = max(float(total), 1e-12)
        self.done = 0.0
        self.state = "running"
        self.message = "starting"
        self.error: str | None = None
        self.result: Any = None
        self.partial: Any = None
        self.started = time.monotonic()
        self.finished: float | None = None
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=f"hdsgd-teach-job-{job_id}",
                                       daemon=True)

    # ------------------------------------------------------------ inside the thread
    def step(self, work: float = 0.0, message: str | None = None) -> None:
        """Record progress; raises `Cancelled` if the job was cancelled."""
        with self._lock:
            self.done = min(self.total, self.done + work)
            if message is not None:
                self.message = message
        if self._cancel.is_set():
            raise Cancelled

    def publish(self, partial: Any) -> None:
        with self._lock:
            self.partial = partial

    def _run(self) -> None:
        try:
            result = self._work(self)
        except Cancelled:
            self._finish("cancelled", message="cancelled")
        except Exception as err:  # reported to the page, never raised into the server
            traceback.print_exc()
            self._finish("error", message=f"failed: {err}", error=str(err))
        else:
            with self._lock:
                self.result = result
                self.done = self.total
            self._finish("done", message="done")

    def _finish(self, state: str, *, message: str, error: str | None = None) -> None:
        with self._lock:
            self.state = state
            self.message = message
            self.error = error
            self.finished = time.monotonic()

    # ------------------------------------------------------------ outside
    def cancel(self) -> None:
        self._cancel.set()
        with self._lock:
            if self.state == "running":
                self.message = "cancelling after the current chunk"

    @property
    def cancelling(self) -> bool:
        return self._cancel.is_set()

    def status(self) -> dict:
        with self._lock:
            elapsed = (self.finished or time.monotonic()) - self.started
            out = {"id": self.id, "state": self.state, "progress": self.done / self.total,
                   "message": self.message, "elapsed_s": round(elapsed, 2),
                   "partial": self.partial}
            if self.state == "done":
                out["result"] = self.result
            if self.error is not None:
                out["error"] = self.error
            return out


class Jobs:
    """The jobs of one server: at most one running at a time."""

    def __init__(self):
        self._jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def start(self, work: Callable[[Job], Any], total: float) -> Job:
        with self._lock:
            running = [j for j in self._jobs.values() if j.state == "running"]
            if running:
                raise RuntimeError(f"a simulation is already running (job {running[0].id}); "
                                   "cancel it first")
            job = Job(str(next(self._ids)), work, total)
            self._jobs[job.id] = job
            finished = [k for k, j in self._jobs.items() if j.state != "running"]
            for k in finished[:-KEEP_FINISHED]:
                del self._jobs[k]
        job.thread.start()
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise KeyError(job_id)
        return job

    def cancel_all(self, wait: float = 0.0) -> None:
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel()
        if wait:
            for job in jobs:
                job.thread.join(wait)
