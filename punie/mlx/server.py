"""The mlx-lm server lifecycle: start `mlx_lm server` as a child, wait until it answers, stop it.

`serve_model` is the one way Punie runs a local model server (the CLI, the trainer, the
evaluator and the integration tests all use it). The child runs in its own process group with a
fast BLAS preloaded on Linux CPU, logs to a file, and the whole group is stopped on exit.

mlx-lm 0.32 trap: `--adapter-path` is applied only to requests whose `model` is
`"default_model"`; a request that names the model's path makes the server load that path again
*without* the adapter, silently. GET /v1/models lists the resolved model path (not
"default_model"), so a client must not pick its model name from there: send
`RunningServer.request_model`, which works with and without an adapter.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import huggingface_hub.constants
import structlog

from punie.errors import ServerError
from punie.mlx.blas import BlasChoice, child_env, choose_blas

log = structlog.get_logger(__name__)

DEFAULT_MODEL_NAME = "default_model"
_POLL_INTERVAL_S = 0.25
_STOP_GRACE_S = 10.0
_LOG_TAIL_LINES = 25
_ACCESS_LOG = re.compile(r'\] "(GET|POST|OPTIONS) \S+ HTTP/[\d.]+" \d{3}')


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
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return int(httpx.URL(self.base_url).port or 80)


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
) -> Iterator[RunningServer]:
    """Run `python -m mlx_lm server` on `model` (a local folder or a Hugging Face id) until exit.

    Ready means the server answered a one-token completion with the model (and adapter) loaded.
    On exit, also on an exception or Ctrl-C, the server's whole process group is stopped
    (SIGTERM, SIGKILL after a grace period) and reaped. Raises ServerError when the port is
    taken, or when the server exits or does not answer within `startup_timeout_s` (the message
    holds its last log lines).
    """
    model_arg = _model_argument(model)
    adapter = _adapter_argument(adapter)
    if port is None:
        port = _free_port(host)
    else:
        _check_port_free(host, port)
    blas = choose_blas(enabled=fast_blas)
    # mlx-lm's GET /v1/models scans the Hugging Face cache and crashes mid-response when that
    # folder does not exist yet (a fresh machine); huggingface_hub would create it on a download.
    Path(huggingface_hub.constants.HF_HUB_CACHE).mkdir(parents=True, exist_ok=True)
    log_dir = Path(tempfile.mkdtemp(prefix="punie-server-"))
    log_path = log_dir / "mlx_lm_server.log"
    command = [
        sys.executable,
        "-m",
        "mlx_lm",
        "server",
        "--model",
        model_arg,
        "--host",
        host,
        "--port",
        str(port),
        *(["--adapter-path", str(adapter)] if adapter is not None else []),
        *extra_args,
    ]
    env = child_env(blas)
    env["PYTHONUNBUFFERED"] = "1"
    with log_path.open("wb") as log_file:
        # A session of its own: Ctrl-C in the terminal reaches Punie, not the server, and the
        # whole group (the server and anything it spawns) can be stopped with one signal.
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        base_url = f"http://{_url_host(host)}:{port}/v1"
        log.info(
            "server_starting",
            model=model_arg,
            adapter=str(adapter) if adapter else None,
            port=port,
            pid=process.pid,
            blas=blas.name,
            blas_library=str(blas.library) if blas.library else None,
            log_path=str(log_path),
        )
        started = time.monotonic()
        _wait_until_ready(
            process,
            base_url=base_url,
            port=port,
            model=model_arg,
            log_path=log_path,
            deadline=started + startup_timeout_s,
        )
        log.info("server_ready", base_url=base_url, seconds=round(time.monotonic() - started, 2))
        yield RunningServer(
            base_url=base_url,
            request_model=DEFAULT_MODEL_NAME,
            model=model_arg,
            adapter=adapter,
            pid=process.pid,
            blas=blas,
            log_path=log_path,
            process=process,
        )
    finally:
        stop_process_group(process)


def serve_until_interrupted(
    model: str | Path,
    *,
    adapter: Path | None = None,
    port: int | None = None,
    host: str = "127.0.0.1",
    fast_blas: bool = True,
    startup_timeout_s: float = 180.0,
    on_ready: Callable[[RunningServer], None] | None = None,
) -> None:
    """Serve until Ctrl-C (SIGINT) or SIGTERM, then stop the server's process group and return.

    `on_ready` gets the running server once it answers (the CLI prints its URL). A server that
    exits on its own raises ServerError with its last log lines.
    """
    try:
        with (
            _sigterm_as_interrupt(),
            serve_model(
                model,
                adapter=adapter,
                port=port,
                host=host,
                fast_blas=fast_blas,
                startup_timeout_s=startup_timeout_s,
            ) as server,
        ):
            if on_ready is not None:
                on_ready(server)
            assert server.process is not None and server.log_path is not None
            code = server.process.wait()
            raise _startup_error(
                f"stopped on its own (exit code {code})", server.model, server.port, server.log_path
            )
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


def stop_process_group(process: subprocess.Popen[bytes], grace_s: float = _STOP_GRACE_S) -> None:
    """Stop a child started with `start_new_session=True` and everything in its process group."""
    pgid = process.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        log.warning("server_kill", pid=pgid, grace_s=grace_s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        process.wait()
    # Children that outlived the leader are still in its group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    log.info("server_stopped", pid=pgid, returncode=process.returncode)


def log_tail(log_path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    """The last lines of a server log, for error messages."""
    try:
        text = log_path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    # Access-log lines ('127.0.0.1 - - [...] "GET /health HTTP/1.1" 503 -') only hide the error.
    kept = [line for line in text.splitlines() if line.strip() and not _ACCESS_LOG.search(line)]
    return "\n".join(kept[-lines:]) or "(log is empty)"


def _wait_until_ready(
    process: subprocess.Popen[bytes],
    *,
    base_url: str,
    port: int,
    model: str,
    log_path: Path,
    deadline: float,
) -> None:
    root = base_url.removesuffix("/v1")
    with httpx.Client(timeout=2.0) as client:
        # 1. The HTTP server answers /health (503 there means the generation thread died).
        while True:
            _raise_if_exited(process, model, port, log_path)
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
                process.wait(timeout=_POLL_INTERVAL_S)

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
            _raise_if_exited(process, model, port, log_path)
            raise _startup_error("dropped the connection", model, port, log_path) from None
        if response.status_code != 200:
            raise _startup_error(
                f"could not load the model (HTTP {response.status_code})", model, port, log_path
            )


def _raise_if_exited(
    process: subprocess.Popen[bytes], model: str, port: int, log_path: Path
) -> None:
    code = process.poll()
    if code is not None:
        raise _startup_error(f"exited with code {code}", model, port, log_path)


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
