"""The bubblewrap sandbox, for real: writes outside the repository and network connections fail,
writes inside the repository work."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from punie.runtime.tools import Sandbox, Workspace, detect_sandbox, run_command

SANDBOX = detect_sandbox()
needs_bwrap = pytest.mark.skipif(not SANDBOX.available, reason=SANDBOX.reason)


@pytest.fixture
def outside_dir() -> Iterator[Path]:
    """A folder outside the repository and outside /tmp (which the sandbox replaces)."""
    base = "/var/tmp" if os.path.isdir("/var/tmp") else None
    with tempfile.TemporaryDirectory(prefix="punie-sandbox-", dir=base) as name:
        yield Path(name)


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections, outside the sandbox."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


def _connect_command(port: int) -> str:
    code = (
        f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5); "
        "print('connected')"
    )
    return f'{sys.executable} -c "{code}"'


def test_detect_reports_a_kind_and_a_reason() -> None:
    assert SANDBOX.kind in {"bubblewrap", "none"}
    assert SANDBOX.available == (SANDBOX.kind == "bubblewrap")
    assert SANDBOX.reason


def test_missing_bwrap_is_reported_with_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    sandbox = detect_sandbox()
    assert (sandbox.kind, sandbox.available) == ("none", False)
    assert "bubblewrap" in sandbox.reason
    assert sandbox.wrap(["bash", "-c", "ls"], tmp_path) == ["bash", "-c", "ls"]


def test_bwrap_that_cannot_make_namespaces_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bwrap that fails the way it does where user namespaces are off: the reason must say so.
    fake = tmp_path / "bwrap"
    fake.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    sandbox = detect_sandbox()
    assert not sandbox.available
    assert "No permissions to creating new namespace" in sandbox.reason
    assert "user namespaces" in sandbox.reason


def test_unavailable_sandbox_still_runs_the_command(repo: Path) -> None:
    unavailable = Sandbox("none", False, "bwrap not found")
    assert run_command(Workspace(repo), "echo hi", sandbox=unavailable) == "exit code: 0\nhi\n"


@needs_bwrap
def test_writes_inside_the_repository_work(repo: Path) -> None:
    result = run_command(
        Workspace(repo),
        "mkdir -p out && echo made > out/new.txt && cat out/new.txt",
        sandbox=SANDBOX,
    )
    assert result == "exit code: 0\nmade\n"
    assert (repo / "out" / "new.txt").read_text() == "made\n"


@needs_bwrap
def test_writes_outside_the_repository_fail_and_change_nothing(
    repo: Path, outside_dir: Path
) -> None:
    target = outside_dir / "keep.txt"
    target.write_text("original\n")
    ws = Workspace(repo)
    for command in (f"echo pwned > {target}", f"rm {target}", f"touch {outside_dir}/new.txt"):
        result = run_command(ws, command, sandbox=SANDBOX)
        assert not result.startswith("exit code: 0"), result
        assert "Read-only file system" in result
    assert target.read_text() == "original\n"
    assert sorted(p.name for p in outside_dir.iterdir()) == ["keep.txt"]
    # the same write without the sandbox succeeds, so the refusal above is the sandbox's doing
    assert run_command(ws, f"echo changed > {target}").startswith("exit code: 0")
    assert target.read_text() == "changed\n"


@needs_bwrap
def test_tmp_outside_the_repository_is_private(repo: Path, tmp_path: Path) -> None:
    sibling = tmp_path / "sibling.txt"
    sibling.write_text("original\n")
    result = run_command(Workspace(repo), f"echo pwned > {sibling}; cat {sibling}", sandbox=SANDBOX)
    assert "original" not in result
    assert sibling.read_text() == "original\n"


@needs_bwrap
def test_network_connections_fail(repo: Path, listener: int) -> None:
    ws = Workspace(repo)
    assert run_command(ws, _connect_command(listener)) == "exit code: 0\nconnected\n"
    result = run_command(ws, _connect_command(listener), sandbox=SANDBOX)
    assert not result.startswith("exit code: 0"), result
    assert "connected\n" not in result
    assert "ConnectionRefusedError" in result or "unreachable" in result


@needs_bwrap
def test_timeout_kills_sandboxed_commands_too(repo: Path) -> None:
    result = run_command(Workspace(repo), "sleep 300", timeout_s=1, sandbox=SANDBOX)
    assert result.startswith("exit code: none (timed out after 1 s;")
