"""The mlx-lm server lifecycle: start `mlx_lm server` as a child, wait until it answers, stop it.

`serve_model` is the one way Punie runs a local model server (the CLI, the trainer, the
evaluator and the integration tests all use it). The server is an MLX child
(`punie.mlx.child`): fast BLAS, its own process group, dead with its parent however the parent
ends, its RSS watched against a bound, its log removed after a clean stop and kept on failure.

Memory: mlx-lm 0.32's server stores each finished request's KV cache unevaluated, so it pins
the whole batch's KV buffers; under concurrent requests memory grows with every request
(`punie.mlx.serve` has the cause and the fix). The server runs with that fix, a bounded prompt
cache, a capped MLX buffer cache, and an RSS bound (`ServerMemory`);
`tools/bench/server_memory.py` measures them side by side.

mlx-lm 0.32 trap: `--adapter-path` is applied only to requests whose `model` is
`"default_model"`; a request that names the model's path makes the server load that path again
*without* the adapter, silently. GET /v1/models lists the resolved model path (not
"default_model"), so a client must not pick its request model name from there: send
`RunningServer.request_model`, which works with and without an adapter.
"""

from __future__ import annotations

import contextlib
import errno
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import huggingface_hub.constants
import structlog

from punie.errors import ServerError
from punie.mlx.blas import BlasChoice
from punie.mlx.child import MB, MemoryPolicy, MlxChild, start
from punie.mlx.child import log_tail as log_tail
from punie.mlx.serve import PROMPT_CACHE_BYTES_ENV

log = structlog.get_logger(__name__)

DEFAULT_MODEL_NAME = "default_model"
SERVER_NAME = "mlx-lm server"
DEFAULT_PROMPT_CACHE_BYTES = 256 * MB
_POLL_INTERVAL_S = 0.25


@dataclass(frozen=True)
class RunningServer:
    """A live mlx-lm server: where to reach it and what to send as the request's `model`."""

    base_url: str
    request_model: str
    model: str
    adapter: Path | None
    pid: int
    blas: BlasChoice
    log_path: Path | None = None
    child: MlxChild | None = field(default=None, repr=False, compare=False)

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return int(httpx.URL(self.base_url).port or 80)

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.child.process if self.child is not None else None

    def failure(self, settle_s: float = 0.0) -> str | None:
        """One line when the server has died or exceeded its memory bound, else None.

        `settle_s`: how long to wait for a dying server's exit to show (a client sees the
        connection drop a moment before the process is reaped).
        """
        if self.child is None:
            return None
        if settle_s > 0:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.child.wait(timeout=settle_s)
        return self.child.failure()

    def check(self, settle_s: float = 0.0) -> None:
        """Raise ServerError (what died, its peak memory, its log) if the server is not up."""
        line = self.failure(settle_s)
        if line is not None:
            raise ServerError(f"{line}. Last log lines:\n{self.child.log_tail(8)}")


@dataclass(frozen=True)
class ServerMemory:
    """The server's memory bounds: the child's MLX limits and RSS bound, mlx-lm's prompt cache
    (`--prompt-cache-bytes`; None: mlx-lm's default of 10 entries of any size), and whether
    the server runs with Punie's fix for prompt-cache entries that pin batch buffers
    (`punie.mlx.serve`; False: plain `mlx_lm.server`)."""

    child: MemoryPolicy = field(default_factory=MemoryPolicy)
    prompt_cache_bytes: int | None = DEFAULT_PROMPT_CACHE_BYTES
    fixed: bool = True

    @classmethod
    def unbounded(cls) -> ServerMemory:
        """Plain mlx-lm with MLX's defaults, unwatched (to reproduce the growth)."""
        return cls(child=MemoryPolicy.unbounded(), prompt_cache_bytes=None, fixed=False)


@contextmanager
def serve_model(
    model: str | Path,
    *,
    adapter: Path | None = None,
    port: int | None = None,
    host: str = "127.0.0.1",
    fast_blas: bool = True,
    startup_timeout_s: float = 180.0,
    extra_args: Sequence[str] = (),
    memory: ServerMemory | None = None,
    stats_every_s: float | None = None,
    blas_threads: int | None = None,
) -> Iterator[RunningServer]:
    """Run `mlx_lm server` on `model` (a local folder or a Hugging Face id) until exit.

    Ready means the server answered a one-token completion with the model (and adapter) loaded.
    On exit, also on an exception or Ctrl-C, the server's whole process group is stopped
    (SIGTERM, SIGKILL after a grace period) and reaped; its log is removed unless it failed.
    Raises ServerError when the port is taken, or when the server exits or does not answer
    within `startup_timeout_s` (the message holds its last log lines). `blas_threads` caps the
    server's BLAS workers, for servers that share the CPU.
    """
    model_arg = _model_argument(model)
    adapter = _adapter_argument(adapter)
    memory = memory or ServerMemory()
    if port is None:
        port = _free_port(host)
    else:
        _check_port_free(host, port)
    # mlx-lm's GET /v1/models scans the Hugging Face cache and crashes mid-response when that
    # folder does not exist yet (a fresh machine); huggingface_hub would create it on a download.
    Path(huggingface_hub.constants.HF_HUB_CACHE).mkdir(parents=True, exist_ok=True)
    args = [
        "--model", model_arg, "--host", host, "--port", str(port),
        *(["--adapter-path", str(adapter)] if adapter is not None else []),
        *(["--prompt-cache-bytes", str(memory.prompt_cache_bytes)]
          if memory.prompt_cache_bytes is not None else []),
        *extra_args,
    ]  # fmt: skip
    extra_env = {}
    if memory.fixed and memory.prompt_cache_bytes is not None:
        extra_env[PROMPT_CACHE_BYTES_ENV] = str(memory.prompt_cache_bytes)
    child = start(
        SERVER_NAME,
        ["main", "punie.mlx.serve:main" if memory.fixed else "mlx_lm.server:main", *args],
        fast_blas=fast_blas,
        memory=memory.child,
        stats_every_s=stats_every_s,
        extra_env=extra_env,
        blas_threads=blas_threads,
    )
    assert child.log_path is not None
    keep_log = False
    try:
        base_url = f"http://{_url_host(host)}:{port}/v1"
        log.info(
            "server_starting",
            model=model_arg,
            adapter=str(adapter) if adapter else None,
            port=port,
            pid=child.pid,
            blas=child.blas.name,
            log_path=str(child.log_path),
        )
        started = time.monotonic()
        try:
            _wait_until_ready(
                child,
                base_url=base_url,
                port=port,
                model=model_arg,
                deadline=started + startup_timeout_s,
            )
        except ServerError:
            keep_log = True
            raise
        log.info("server_ready", base_url=base_url, seconds=round(time.monotonic() - started, 2))
        server = RunningServer(
            base_url=base_url,
            request_model=DEFAULT_MODEL_NAME,
            model=model_arg,
            adapter=adapter,
            pid=child.pid,
            blas=child.blas,
            log_path=child.log_path,
            child=child,
        )
        yield server
    finally:
        child.close(keep_log=True if keep_log else None)


def serve_until_interrupted(
    model: str | Path,
    *,
    on_ready: Callable[[RunningServer], None] | None = None,
    **options: Any,
) -> None:
    """Serve until Ctrl-C (SIGINT) or SIGTERM, then stop the server's process group and return.

    `options` are `serve_model`'s. `on_ready` gets the running server once it answers (the CLI
    prints its URL). A server that exits on its own raises ServerError with its last log lines.
    """
    try:
        with _sigterm_as_interrupt(), serve_model(model, **options) as server:
            if on_ready is not None:
                on_ready(server)
            assert server.child is not None
            server.child.wait()
            server.check(settle_s=1.0)  # the watcher may still be recording why
            raise ServerError(f"the {SERVER_NAME} (pid {server.pid}) stopped on its own")
    except KeyboardInterrupt:
        # The context manager has already stopped the server's process group.
        log.info("server_interrupted")


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C while serving, so `kill` also stops the server's group."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


_DEATH_GRACE_S = 3.0


def _wait_until_ready(
    child: MlxChild, *, base_url: str, port: int, model: str, deadline: float
) -> None:
    assert child.log_path is not None
    log_path = child.log_path
    root = base_url.removesuffix("/v1")
    with httpx.Client(timeout=2.0) as client:
        # 1. The HTTP server answers /health (503 there means the generation thread died).
        while True:
            _raise_if_exited(child, model, port)
            if "Address already in use" in log_path.read_text(errors="replace"):
                raise ServerError(
                    f"Port {port} is already in use; the mlx-lm server for {model} "
                    "could not bind it. Pick another --port or leave it out for a free one."
                )
            try:
                response = client.get(f"{root}/health")
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code == 200:
                break
            if response is not None and response.status_code == 503:
                raise _startup_error("could not load the model", model, port, log_path)
            if time.monotonic() > deadline:
                raise _startup_error("did not answer in time", model, port, log_path)
            # Wait for the next probe, returning at once if the server exits meanwhile.
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=_POLL_INTERVAL_S)

        # 2. The model loads in a background thread after the HTTP server is up; a one-token
        # completion returns once it is loaded (with the adapter), or fails if loading failed.
        try:
            response = client.post(
                f"{base_url}/completions",
                json={"model": DEFAULT_MODEL_NAME, "prompt": "Hi", "max_tokens": 1},
                timeout=max(1.0, deadline - time.monotonic()),
            )
        except httpx.TimeoutException:
            raise _startup_error("did not load the model in time", model, port, log_path) from None
        except httpx.TransportError:
            # A server being killed (by the memory watcher, say) drops the connection a moment
            # before it has exited: give it that moment, so the error says why it died.
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=_DEATH_GRACE_S)
            _raise_if_exited(child, model, port)
            raise _startup_error("dropped the connection", model, port, log_path) from None
        if response.status_code != 200:
            raise _startup_error(
                f"could not load the model (HTTP {response.status_code})", model, port, log_path
            )


def _raise_if_exited(child: MlxChild, model: str, port: int) -> None:
    if child.poll() is not None and child.log_path is not None:
        child.wait()  # and let the memory watcher record why
        line = child.failure() or f"the {SERVER_NAME} (pid {child.pid}) exited"
        raise ServerError(
            f"{line}. It served {model} on port {port}; check that the model folder (or Hugging "
            f"Face id) and adapter load with mlx_lm. Last log lines:\n{child.log_tail()}"
        )


def _startup_error(what: str, model: str, port: int, log_path: Path) -> ServerError:
    return ServerError(
        f"The mlx-lm server for {model} on port {port} {what}. Check that the model folder "
        f"(or Hugging Face id) and adapter load with mlx_lm; full log: {log_path}. "
        f"Last log lines:\n{log_tail(log_path)}"
    )


def _model_argument(model: str | Path) -> str:
    text = str(model)
    looks_local = isinstance(model, Path) or text.startswith(("/", ".", "~")) or Path(text).exists()
    if not looks_local:
        return text  # a Hugging Face id; mlx-lm resolves (and may download) it
    path = Path(text).expanduser()
    if not path.exists():
        raise ServerError(
            f"Model folder {path} does not exist. Pass an mlx-lm model folder (e.g. from "
            "`punie model embedded` or `punie model import-gguf`) or a Hugging Face id."
        )
    return str(path.resolve())


def _adapter_argument(adapter: Path | None) -> Path | None:
    if adapter is None:
        return None
    adapter = Path(adapter).expanduser().resolve()
    if not (adapter / "adapter_config.json").is_file():
        raise ServerError(
            f"Adapter folder {adapter} has no adapter_config.json. Pass the --adapter-path "
            "folder that `mlx_lm lora` (or `punie train`) wrote."
        )
    return adapter


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR as the server's ThreadingHTTPServer sets it, so a port in TIME_WAIT
        # counts as free, as it is for the server.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ServerError(
                    f"Port {port} on {host} is already in use. Stop whatever listens there, "
                    "pick another --port, or leave it out for a free one."
                ) from None
            raise ServerError(f"Cannot bind port {port} on {host}: {exc.strerror}.") from None


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
