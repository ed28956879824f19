"""The one way Punie starts an MLX child process: the server, training, fusing, held-out loss.

A child runs `python -m punie.mlx.entry` with the fast BLAS preloaded (`child_env(choose_blas())`)
in a session (process group) of its own, so one signal stops it and anything it spawns, and
Ctrl-C in the terminal reaches Punie only. It dies with its parent however the parent ends
(SIGTERM, SIGKILL, a crash): the entry asks the kernel for SIGKILL on the parent's death
(`PR_SET_PDEATHSIG`) and watches the parent pid. A watcher thread samples its RSS; past
`MemoryPolicy.max_rss_bytes` it is killed and says so. Its output goes to a log file in a
temporary folder that is removed after success and kept (and named) on failure.

`start` returns a running `MlxChild` (the server); `run_main` runs an entry point to the end;
`call` runs a function in the child with a JSON request and returns its JSON result.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from punie import errors
from punie.errors import ModelImportError, PunieError
from punie.mlx.blas import BlasChoice, child_env, choose_blas, thread_env
from punie.mlx.entry import (
    CACHE_LIMIT_ENV,
    MEMORY_LIMIT_ENV,
    PARENT_ENV,
    PDEATHSIG_ENV,
    STATS_ENV,
)
from punie.process_group import signal_group, stop_group

log = structlog.get_logger(__name__)

MB = 1 << 20
_SAMPLE_S = 0.5
_STOP_GRACE_S = 10.0
_LOG_TAIL_LINES = 25
_ACCESS_LOG = re.compile(r'\] "(GET|POST|OPTIONS) \S+ HTTP/[\d.]+" \d{3}')


class ChildError(PunieError):
    """An MLX child process died, ran out of its memory bound, or failed without a report."""


def _total_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 16 << 30


GLIBC_TUNABLES_ENV = "GLIBC_TUNABLES"
# Allocations of any size come from the heap (no per-buffer mmap), and the heap is never trimmed.
KEEP_FREED_TUNABLES = (
    "glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295"
)


@dataclass(frozen=True)
class MemoryPolicy:
    """Memory bounds for an MLX child (bytes; None: no bound).

    `cache_limit_bytes` caps MLX's buffer cache (freed buffers kept for reuse; by default it may
    grow to the memory limit, nearly all RAM on CPU), `memory_limit_bytes` is MLX's own memory
    limit, and past `max_rss_bytes` of resident memory the watcher kills the child.
    """

    cache_limit_bytes: int | None = 64 * MB
    memory_limit_bytes: int | None = None
    max_rss_bytes: int | None = field(default_factory=lambda: int(_total_memory_bytes() * 0.6))
    keep_freed_memory: bool = False
    """Have glibc's malloc keep freed memory for reuse instead of returning it to the kernel.

    MLX's CPU allocator caches no buffers: every temporary is malloc'd and freed, and glibc
    serves the large ones (attention scores, logits) with fresh mmaps, which the kernel must
    zero page by page on first touch. In a training step that was ~19% of the CPU time
    (`clear_page_erms` under `perf`). A child whose working set is the same every step
    (training) keeps it; a server, whose idle memory should fall back, does not.
    """

    @classmethod
    def unbounded(cls) -> MemoryPolicy:
        """MLX's defaults and no RSS bound (to reproduce the unbounded growth)."""
        return cls(cache_limit_bytes=None, memory_limit_bytes=None, max_rss_bytes=None)

    def env(self, inherited: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment the child's entry reads its MLX limits from (and glibc its malloc
        tunables, after any the `inherited` environment already sets)."""
        values = {
            CACHE_LIMIT_ENV: self.cache_limit_bytes,
            MEMORY_LIMIT_ENV: self.memory_limit_bytes,
        }
        env = {key: str(value) for key, value in values.items() if value is not None}
        if self.keep_freed_memory:
            own = (inherited or {}).get(GLIBC_TUNABLES_ENV)  # the user's own tunables win
            env[GLIBC_TUNABLES_ENV] = f"{KEEP_FREED_TUNABLES}:{own}" if own else KEEP_FREED_TUNABLES
        return env


def format_bytes(count: int | None) -> str:
    """`1.2 GB`, `340 MB`; `unknown` for None (a child that ended before it was sampled)."""
    if count is None:
        return "unknown"
    return f"{count / 1e9:.1f} GB" if count >= 1e9 else f"{count / 1e6:.0f} MB"


@dataclass(eq=False)
class MlxChild:
    """A running (or finished) MLX child: its process, log and memory record."""

    name: str
    process: subprocess.Popen[bytes]
    workdir: Path
    log_path: Path | None
    blas: BlasChoice
    memory: MemoryPolicy
    peak_rss_bytes: int = 0
    peak_anon_bytes: int = 0
    over_memory: bool = False
    stopped: bool = False
    _watcher: threading.Thread | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def poll(self) -> int | None:
        """The exit status once it has ended, else None."""
        return self.process.poll()

    def failure(self) -> str | None:
        """One line saying what died, its peak memory and where its log is; None while it is
        running, or after it ended cleanly (exit 0, or stopped by `stop`)."""
        code = self.poll()
        if not self.over_memory and (code is None or code == 0 or self.stopped):
            return None
        if self.over_memory:
            what = (
                f"exceeded its memory bound of {format_bytes(self.memory.max_rss_bytes)} "
                "and was killed"
            )
        elif code is not None and code < 0:
            sig = signal.Signals(-code).name
            what = f"was killed by {sig}" + (" (out of memory?)" if sig == "SIGKILL" else "")
        else:
            what = f"exited with status {code}"
        where = f"log: {self.log_path}" if self.log_path else "its output is above"
        return (
            f"the {self.name} (pid {self.pid}) {what}; peak RSS "
            f"{format_bytes(self.peak_rss_bytes or None)}; {where}"
        )

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last lines of its log (access-log and memory-stats lines left out)."""
        return log_tail(self.log_path, lines) if self.log_path else "(output not logged)"

    def wait(self, timeout: float | None = None) -> int:
        """Wait for it to end (and for the memory watcher to record why); its exit status."""
        code = self.process.wait(timeout=timeout)
        if self._watcher is not None:
            self._watcher.join(timeout=2 * _SAMPLE_S)
        return code

    def stop(self, grace_s: float = _STOP_GRACE_S, first: signal.Signals = signal.SIGTERM) -> int:
        """Stop its whole process group (`first`, SIGKILL after `grace_s`) and reap it."""
        if self.process.poll() is None:
            self.stopped = True
        pgid = self.pid
        if stop_group(self.process, grace_s, first):
            log.warning("mlx_child_kill", name=self.name, pid=pgid, grace_s=grace_s)
        if self._watcher is not None:
            self._watcher.join(timeout=2 * _SAMPLE_S)
        log.info(
            "mlx_child_stopped",
            name=self.name,
            pid=pgid,
            returncode=self.process.returncode,
            peak_rss_mb=self.peak_rss_bytes // MB,
        )
        return self.process.returncode

    def close(self, *, keep_log: bool | None = None) -> None:
        """Stop it if running; remove its folder (log included) unless it failed or `keep_log`."""
        self.stop()
        keep = self.failure() is not None if keep_log is None else keep_log
        if keep:
            log.info("mlx_child_log_kept", name=self.name, log_path=str(self.log_path))
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _watch(self) -> None:
        """Sample VmHWM/RssAnon until it ends; kill its group past the RSS bound."""
        status = Path(f"/proc/{self.pid}/status")
        while True:
            sample = _read_status(status)
            if sample is None:
                return
            self.peak_rss_bytes = max(self.peak_rss_bytes, sample.get("VmHWM", 0) * 1024)
            self.peak_anon_bytes = max(self.peak_anon_bytes, sample.get("RssAnon", 0) * 1024)
            bound = self.memory.max_rss_bytes
            if bound is not None and sample.get("VmRSS", 0) * 1024 > bound:
                self.over_memory = True
                log.error(
                    "mlx_child_over_memory",
                    name=self.name,
                    pid=self.pid,
                    rss_mb=sample["VmRSS"] // 1024,
                    bound_mb=bound // MB,
                )
                signal_group(self.pid)
                return
            time.sleep(_SAMPLE_S)


def _read_status(path: Path) -> dict[str, int] | None:
    """VmRSS/VmHWM/RssAnon (kB) of a live process; None once it has ended (or is a zombie)."""
    try:
        text = path.read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == "State" and value.split()[0] in ("Z", "X"):
            return None
        if key in ("VmRSS", "VmHWM", "RssAnon"):
            fields[key] = int(value.split()[0])
    return fields


def start(
    name: str,
    entry_args: Sequence[str],
    *,
    fast_blas: bool = True,
    memory: MemoryPolicy | None = None,
    log_output: bool = True,
    stats_every_s: float | None = None,
    extra_env: Mapping[str, str] | None = None,
    blas_threads: int | None = None,
) -> MlxChild:
    """Start `python -m punie.mlx.entry ENTRY_ARGS...` as an MLX child named `name`.

    `log_output` sends stdout and stderr to a log file in the child's folder; else they are
    this process's (a progress bar draws on the terminal). `stats_every_s` makes the child
    print MLX's allocator counters to its log. `blas_threads` caps its BLAS workers (children
    that share the CPU); None leaves the BLAS its default (one per CPU).
    """
    memory = memory or MemoryPolicy()
    blas = choose_blas(enabled=fast_blas)
    env = child_env(blas)
    if blas_threads is not None:
        env.update(thread_env(blas_threads, env))
    env.update(memory.env(env))
    env.update(extra_env or {})
    env["PYTHONUNBUFFERED"] = "1"
    env[PARENT_ENV] = str(os.getpid())
    if threading.current_thread() is threading.main_thread():
        env[PDEATHSIG_ENV] = "1"
    if stats_every_s is not None:
        env[STATS_ENV] = str(stats_every_s)
    slug = re.sub(r"[^\w.-]+", "-", name)
    workdir = Path(tempfile.mkdtemp(prefix=f"punie-{slug}-"))
    log_path = workdir / f"{slug}.log" if log_output else None
    command = [sys.executable, "-m", "punie.mlx.entry", *entry_args]
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(log_path.open("wb")) if log_path is not None else None
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT if out is not None else None,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            shutil.rmtree(workdir, ignore_errors=True)
            raise ChildError(f"could not start the {name}: {exc}") from exc
    child = MlxChild(name, process, workdir, log_path, blas, memory)
    child._watcher = threading.Thread(target=child._watch, name=f"punie-{slug}-rss", daemon=True)
    child._watcher.start()
    log.info(
        "mlx_child_started",
        name=name,
        pid=process.pid,
        blas=blas.name,
        log_path=str(log_path) if log_path else None,
        cache_limit=memory.cache_limit_bytes,
        max_rss=memory.max_rss_bytes,
    )
    return child


@contextlib.contextmanager
def failing_as_model_error(job: str) -> Iterator[None]:
    """Re-raise a ChildError from the block as ModelImportError("{job} failed: ...")."""
    try:
        yield
    except ChildError as exc:
        raise ModelImportError(f"{job} failed: {exc}") from None


def run_main(
    name: str,
    target: str,
    args: Sequence[str],
    *,
    fast_blas: bool = True,
    memory: MemoryPolicy | None = None,
) -> MlxChild:
    """Run the entry point `target` (`module:function`, reading `sys.argv`) with `args` to its
    end; returns the finished child (its log is removed on exit 0). Raises ChildError, with the
    log's last lines, when it fails."""
    child = start(name, ["main", target, *args], fast_blas=fast_blas, memory=memory)
    _wait_or_stop(child)
    failure = child.failure()
    if failure is not None:
        tail = child.log_tail(8)
        child.close(keep_log=True)
        raise ChildError(f"{failure}. Last lines:\n{tail}")
    child.close(keep_log=False)
    return child


def call(
    name: str,
    target: str,
    request: Mapping[str, Any],
    *,
    fast_blas: bool = True,
    memory: MemoryPolicy | None = None,
    log_output: bool = True,
    extra_env: Mapping[str, str] | None = None,
    blas_threads: int | None = None,
) -> Any:
    """`target(**request)` (`module:function`) in an MLX child; returns its JSON result.

    A PunieError in the child is raised here as the same kind with the same message; a child
    that dies without a report raises ChildError naming it, its peak memory and its log.
    """
    child: MlxChild | None = None
    workdir = Path(tempfile.mkdtemp(prefix="punie-request-"))
    try:
        request_path, response_path = workdir / "request.json", workdir / "response.json"
        request_path.write_text(json.dumps(dict(request)), encoding="utf-8")
        child = start(
            name,
            ["call", target, str(request_path), str(response_path)],
            fast_blas=fast_blas,
            memory=memory,
            log_output=log_output,
            extra_env=extra_env,
            blas_threads=blas_threads,
        )
        _wait_or_stop(child)
        body = (
            json.loads(response_path.read_text(encoding="utf-8"))
            if response_path.is_file()
            else None
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    assert child is not None
    if body is None or (child.failure() is not None and "error" not in body):
        line = child.failure() or f"the {name} (pid {child.pid}) wrote no result"
        tail = child.log_tail(8)
        child.close(keep_log=True)
        raise ChildError(f"{line}. Last lines:\n{tail}" if child.log_path else line)
    if "error" in body:
        kind = getattr(errors, body["error"]["type"], None)
        kind = kind if isinstance(kind, type) and issubclass(kind, PunieError) else ChildError
        message = body["error"]["message"]
        if kind is ChildError and child.log_path is not None:
            message += f" ({name} log: {child.log_path})"
        child.close(keep_log=kind is ChildError)
        raise kind(message)
    child.close(keep_log=False)
    return body["result"]


def _wait_or_stop(child: MlxChild) -> None:
    """Wait for the child; on Ctrl-C or any error here, stop its group before re-raising."""
    try:
        child.wait()
    except BaseException:
        child.stop(first=signal.SIGINT)
        raise


def log_tail(log_path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    """The last lines of a child's log, for error messages."""
    try:
        text = log_path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    # Access-log lines ('127.0.0.1 - - [...] "GET /health HTTP/1.1" 503 -') hide the error.
    kept = [
        line
        for line in text.splitlines()
        if line.strip() and not _ACCESS_LOG.search(line) and not line.startswith("punie-mlx-")
    ]
    return "\n".join(kept[-lines:]) or "(log is empty)"
