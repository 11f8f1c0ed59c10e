"""The one process pool of the studies: commands run ``jobs`` at a time, each with its CPU time.

A training run is its own process (a fresh interpreter: no state leaks between arms, and a crash
loses one run), with one torch thread when several share the machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Finished", "Job", "exit_reason", "run_jobs"]


@dataclass
class Job:
    """One command: its output goes to ``log``; ``env`` is added to this process's environment."""

    name: str
    command: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None


@dataclass
class Finished:
    job: Job
    exit_code: int
    wall_seconds: float
    cpu_seconds: float  # user + system of the whole process tree (loader workers included)


def run_jobs(jobs: Sequence[Job], parallel: int, on_done: Callable[[Finished], None] | None = None,
             log=print) -> list[Finished]:
    """Run ``jobs``, at most ``parallel`` at a time; ``on_done`` is called as each one ends."""
    if parallel < 1:
        raise ValueError(f"parallel must be >= 1, got {parallel}")
    todo, running, done = list(jobs), {}, []
    # SIGTERM (a scheduler, `kill`) would end this process without the cleanup below and leave the
    # runs training as orphans; raising SystemExit sends it through the same path as Ctrl-C.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        while todo or running:
            while todo and len(running) < parallel:
                job = todo.pop(0)
                job.log.parent.mkdir(parents=True, exist_ok=True)
                with open(job.log, "w") as out:
                    proc = subprocess.Popen(job.command, cwd=job.cwd, env={**os.environ, **job.env}, stdout=out,
                                            stderr=subprocess.STDOUT)
                running[proc.pid] = (job, proc, time.time())
                log(f"[{job.name}] started (pid {proc.pid}), log {job.log}")
            # wait4 reaps one child and gives its rusage, which includes its own reaped children.
            pid, status, usage = os.wait4(-1, 0)
            if pid not in running:
                continue
            job, proc, start = running.pop(pid)
            proc.returncode = os.waitstatus_to_exitcode(status)
            finished = Finished(job, proc.returncode, round(time.time() - start, 1),
                                round(usage.ru_utime + usage.ru_stime, 1))
            done.append(finished)
            state = "done" if finished.exit_code == 0 else f"FAILED ({exit_reason(finished.exit_code)}; see {job.log})"
            log(f"[{job.name}] {state}: {finished.wall_seconds / 60:.1f} min wall, {finished.cpu_seconds / 60:.1f} CPU-min")
            if on_done is not None:
                on_done(finished)
    finally:  # interrupted: no orphan keeps training
        for _, proc, _ in running.values():
            proc.terminate()
        for _, proc, _ in running.values():
            proc.wait()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return done


def exit_reason(exit_code: int) -> str:
    """``exit N``, or the signal that ended the process; SIGKILL nobody here sent is most often the
    kernel's out-of-memory killer (a run's log then simply stops), so it says what to try."""
    if exit_code >= 0:
        return f"exit {exit_code}"
    try:
        name = signal.Signals(-exit_code).name
    except ValueError:
        return f"killed by signal {-exit_code}"
    if name == "SIGKILL":
        return "killed by SIGKILL: out of memory? fewer runs side by side (--jobs) need less"
    return f"killed by {name}"


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)
