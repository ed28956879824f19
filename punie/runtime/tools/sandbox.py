"""The command sandbox: bubblewrap with a read-only file system except the repository, no network.

`detect_sandbox` probes whether bubblewrap really works here (it needs unprivileged user
namespaces) and says why not when it does not, so a run can report that it is unsandboxed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

_PROBE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Sandbox:
    """How `run_command` confines commands: `kind` is "bubblewrap" or "none"."""

    kind: str
    available: bool
    reason: str
    executable: str = "bwrap"

    def wrap(self, argv: list[str], root: Path) -> list[str]:
        """The argv that runs `argv` confined to `root`; `argv` itself when no sandbox works.

        Under bubblewrap the whole file system is mounted read-only, /tmp is a private tmpfs,
        `root` is the only writable tree, the network is unshared (only a private loopback),
        and the sandbox dies with its parent.
        """
        if self.kind != "bubblewrap" or not self.available:
            return list(argv)
        repo = str(Path(root).resolve())
        return [
            self.executable,
            "--ro-bind", "/", "/",
            "--dev", "/dev",
            "--proc", "/proc",
            "--tmpfs", "/tmp",
            "--bind", repo, repo,  # after the tmpfs, so a repository under /tmp stays visible
            "--unshare-net",
            "--die-with-parent",
            "--chdir", repo,
            "--",
            *argv,
        ]  # fmt: skip


def _probe_argv(executable: str) -> list[str]:
    return Sandbox("bubblewrap", True, "", executable).wrap(["true"], Path("/tmp"))


def detect_sandbox() -> Sandbox:
    """Find bubblewrap and check it can build a sandbox here; otherwise say why not."""
    if not sys.platform.startswith("linux"):
        sandbox = Sandbox(
            "none",
            False,
            f"bubblewrap sandboxing is Linux-only; commands run unsandboxed on {sys.platform}",
        )
        log.warning("sandbox_unavailable", reason=sandbox.reason)
        return sandbox
    executable = shutil.which("bwrap")
    if executable is None:
        sandbox = Sandbox(
            "none",
            False,
            "bwrap not found on PATH: install Debian's bubblewrap (apt-get install bubblewrap)",
        )
        log.warning("sandbox_unavailable", reason=sandbox.reason)
        return sandbox
    try:
        probe = subprocess.run(
            _probe_argv(executable),
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        reason = f"{executable} could not be started as a sandbox probe: {exc}"
    else:
        if probe.returncode == 0:
            sandbox = Sandbox(
                "bubblewrap",
                True,
                "bubblewrap: read-only file system except the repository, private /tmp, no network",
                executable,
            )
            log.info("sandbox_ready", kind=sandbox.kind, executable=executable)
            return sandbox
        detail = probe.stderr.strip() or f"exit code {probe.returncode}"
        reason = (
            f"{executable} cannot create a sandbox here ({detail}): unprivileged user "
            "namespaces are probably disabled (sysctl kernel.unprivileged_userns_clone=1, or "
            "run the container with user namespaces allowed)"
        )
    sandbox = Sandbox("none", False, reason, executable)
    log.warning("sandbox_unavailable", reason=reason)
    return sandbox
