"""The process ``dockyard serve`` becomes once the configuration is valid and the schema current.

It forks the workers, replaces one that dies, and stops them all on SIGTERM or SIGINT; nothing
else. It imports only the standard library: a worker loads granian and the app after the fork
(``dockyard.serving``), so this process stays a bare interpreter of about 10 MB. (granian's own
supervisor carried granian, asyncio, ssl and multiprocessing, 31 MB, and since the workers were
forked from it every worker's resident memory counted those pages again.) It reads the settings
``serve`` resolved from ``DOCKYARD_EFFECTIVE_CONFIG`` as plain JSON (already validated). Started
by ``os.execv``, it keeps ``serve``'s PID: SIGTERM and SIGKILL reach it as they would have
reached ``serve``.

Stopping: every worker is sent SIGTERM, lets its requests in flight finish and exits; one still
running after ``server.graceful_timeout`` is killed, and the supervisor then exits with status 1
(0 when every worker stopped by itself). A stop can reach a worker before the worker takes
signals itself: CPython drops a signal that arrives in a freshly forked child before it first
runs, and until the worker installs its own handler it has this module's. So the supervisor
marks its stop in a byte shared with every worker first, and the worker looks at it once it
can act on a stop.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import signal
import sys
import time

# Only the standard library's smallest modules here (not even typing or dataclasses), and
# dockyard.serving, which keeps to them too: whatever this process loads, it keeps for as long as
# the server runs.
from dockyard.serving import EFFECTIVE_CONFIG

PR_SET_PDEATHSIG = 1  # prctl(2)
RESPAWN_PAUSE = 1.0  # after a worker that died young, so a worker that cannot start does not spin
OPEN_FILES_CAP = 1 << 20  # the kernel's default fs.nr_open
YOUNG = 10.0  # seconds: a worker that dies sooner is retried only after the pause
# A metrics directory `serve` made for this server alone, removed when the supervisor exits.
OWNED_METRICS_DIR = "DOCKYARD_OWNED_METRICS_DIR"


class Worker:
    __slots__ = ("slot", "started")

    def __init__(self, slot: int, started: float) -> None:
        self.slot = slot  # 0, 1, ...: the worker's number, and which CPU server.pin_workers gives it
        self.started = started


def log(level: str, message: str) -> None:
    """One line on stdout, written at once: also from a signal handler, which may have interrupted
    another line (a buffered ``print`` would raise there)."""
    os.write(sys.stdout.fileno(), f"[{level}] {message}\n".encode())


class Supervisor:
    def __init__(self, count: int, graceful_timeout: float) -> None:
        self.count = count
        self.graceful_timeout = graceful_timeout
        self.pid = os.getpid()
        self.workers: dict[int, Worker] = {}
        self.stopping = mmap.mmap(-1, 1)  # byte 0 becomes 1 when the supervisor stops; shared after fork
        self.stopped_early = False  # in a worker: a stop that came before its loop took signals
        self.killed = 0

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_stop)
        signal.signal(signal.SIGALRM, self._on_stop_timeout)
        for slot in range(self.count):
            if not self.stopping[0]:  # a stop that came while the first workers started
                self._spawn(slot)
        while self.workers:
            try:
                pid, status = os.wait()
            except ChildProcessError:  # no child left: every one is in self.workers, so not expected
                break
            worker = self.workers.pop(pid, None)
            if worker is None or self.stopping[0]:
                continue
            log("WARNING", f"worker-{worker.slot + 1} (PID {pid}) exited unexpectedly "
                           f"({_describe(status)}); starting a new one")
            if time.monotonic() - worker.started < YOUNG:
                time.sleep(RESPAWN_PAUSE)
            if not self.stopping[0]:
                self._spawn(worker.slot)
        signal.alarm(0)
        log("INFO", "dockyard stopped")
        return 1 if self.killed else 0

    def _spawn(self, slot: int) -> None:
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                from dockyard.serving import run_worker

                self._stop_with_the_supervisor()
                status = run_worker(slot, lambda: self.stopped_early or bool(self.stopping[0]))
            except BaseException:  # a worker's end is reported, then its process ends
                import traceback

                traceback.print_exc()
            finally:
                sys.stdout.flush()
                os._exit(status)
        self.workers[pid] = Worker(slot, time.monotonic())
        log("INFO", f"Spawning worker-{slot + 1} with PID: {pid}")

    def _stop_with_the_supervisor(self) -> None:
        """In a worker: be sent SIGTERM when the supervisor dies, however it died (SIGKILL, the OOM
        killer), as an orphaned worker would go on serving, unsupervised, on a port a restart needs."""
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != self.pid:  # it died before the request took effect
            os.kill(os.getpid(), signal.SIGTERM)

    def _on_stop(self, signum: int, _frame: object) -> None:
        if os.getpid() != self.pid:  # a worker whose loop does not take signals yet
            self.stopped_early = True
            return
        if self.stopping[0]:
            return  # already stopping: a repeated signal changes nothing
        self.stopping[0] = 1
        log("INFO", f"{signal.Signals(signum).name}: stopping the workers "
                    f"(at most {self.graceful_timeout:g}s for requests in flight)")
        self._signal_workers(signal.SIGTERM)
        signal.setitimer(signal.ITIMER_REAL, self.graceful_timeout)

    def _on_stop_timeout(self, _signum: int, _frame: object) -> None:
        for pid, worker in self.workers.items():
            log("WARNING", f"worker-{worker.slot + 1} (PID {pid}) did not stop within "
                           f"server.graceful_timeout ({self.graceful_timeout:g}s); killing it")
            self.killed += 1
        self._signal_workers(signal.SIGKILL)

    def _signal_workers(self, signum: signal.Signals) -> None:
        for pid in list(self.workers):
            with contextlib.suppress(ProcessLookupError):  # it has just exited
                os.kill(pid, signum)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def raise_open_files_limit() -> None:
    """Raise the soft limit on open files to the hard one, for the workers this process forks.

    Every connection takes a descriptor (``server.max_connections`` per worker), and systemd and
    most shells start services with a soft limit of 1,024, far below the hard one.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = OPEN_FILES_CAP if hard == resource.RLIM_INFINITY else min(hard, OPEN_FILES_CAP)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:  # a kernel cap below it (fs.nr_open): keep the old
            log("WARNING", f"cannot raise the open files limit from {soft} to {target}: {exc}")
        else:
            log("INFO", f"open files limit raised from {soft} to {target}")


def main() -> None:
    server = json.loads(os.environ[EFFECTIVE_CONFIG])["server"]
    raise_open_files_limit()
    count = server["workers"] or os.cpu_count() or 1
    try:
        status = Supervisor(count, float(server["graceful_timeout"])).run()
    finally:  # only the supervisor gets here: a worker leaves by os._exit
        if os.environ.get(OWNED_METRICS_DIR):
            import shutil

            shutil.rmtree(os.environ[OWNED_METRICS_DIR], ignore_errors=True)
    sys.exit(status)


if __name__ == "__main__":
    main()
