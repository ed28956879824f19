"""`train()`: check a configuration, then run mlx-lm training where the fast BLAS is loaded.

MLX binds its BLAS when it loads, so a process that has not preloaded OpenBLAS/MKL trains in
a child (`python -m punie.mlx.train.worker`) started with the BLAS environment; the child's errors
come back as the same PunieError with the same one-line message.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import structlog

from punie import errors
from punie.errors import PunieError
from punie.mlx.blas import BlasChoice, child_env, choose_blas
from punie.mlx.train.config import TrainConfig, make_config, resolve
from punie.mlx.train.result import TrainResult

log = structlog.get_logger(__name__)


def blas_loaded(choice: BlasChoice, maps: Path = Path("/proc/self/maps")) -> bool:
    """Whether this process already has ``choice``'s library mapped (so MLX uses it)."""
    if choice.library is None:
        return True
    try:
        mapped = maps.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return str(choice.library.resolve()) in mapped or str(choice.library) in mapped


def train(config: TrainConfig, *, progress: bool = True) -> TrainResult:
    """Train an adapter as ``config`` says; returns where it is and how the loss ended.

    The configuration is checked first (splits, model folder, layer count; then every row renders
    and masks) so a bad one fails before any step. Runs in this process when the chosen BLAS is
    already loaded (or there is none to load), else in a BLAS-preloaded child process.
    """
    run = resolve(config)
    choice = choose_blas(enabled=config.fast_blas)
    if blas_loaded(choice):
        from punie.mlx.train.trainer import run_training

        return run_training(run, progress=progress, blas=choice.name)
    return _train_in_child(config, progress=progress, choice=choice)


def _train_in_child(config: TrainConfig, *, progress: bool, choice: BlasChoice) -> TrainResult:
    with tempfile.TemporaryDirectory(prefix="punie-train-") as tmp:
        request = Path(tmp) / "request.json"
        response = Path(tmp) / "response.json"
        request.write_text(
            json.dumps(
                {"config": config.to_dict(), "progress": progress, "response": str(response)}
            ),
            encoding="utf-8",
        )
        command = [sys.executable, "-m", "punie.mlx.train.worker", str(request)]
        log.info("train_child_start", blas=choice.name, library=str(choice.library))
        # The child inherits stdout/stderr so its progress bar draws on this terminal.
        returncode = run_child(command, child_env(choice))
        if not response.is_file():
            raise errors.PunieError(
                f"training process exited with status {returncode} before reporting; "
                "see its output above"
            )
        body = json.loads(response.read_text(encoding="utf-8"))
    if "error" in body:
        kind = getattr(errors, body["error"]["type"], PunieError)
        raise kind(body["error"]["message"])
    return TrainResult.from_json(body["result"])


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _die_with(parent: int):
    """A preexec_fn: on Linux, ask the kernel to SIGTERM this child when its parent dies."""

    def setup() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return setup


def run_child(command: list[str], env: dict[str, str]) -> int:
    """Run ``command`` to completion and return its exit status; the child dies with this
    process (SIGTERM on Linux when the parent is killed) and, sharing the terminal's process
    group, gets Ctrl-C as before."""
    preexec = _die_with(os.getpid()) if sys.platform.startswith("linux") else None
    with subprocess.Popen(command, env=env, preexec_fn=preexec) as child:
        try:
            return child.wait()
        except BaseException:
            # Ctrl-C reached the child too; give it a moment to stop, then make sure it has.
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
            raise


def train_from_dict(values: dict, *, progress: bool = True) -> TrainResult:
    """`train()` on a plain mapping of mlx-lm lora keys (for notebooks and the worker)."""
    return train(make_config(values), progress=progress)
