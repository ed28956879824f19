"""The sandbox, for real: bubblewrap's deny-by-default view, refusal without a sandbox, the
explicit opt-in, and the macOS profile text (sandbox-exec itself cannot run here)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sandbox_helpers import UNSANDBOXED

from punie.errors import ToolError
from punie.runtime.tools import Sandbox, Workspace, detect_sandbox, run_command, sandbox_status
from punie.runtime.tools.sandbox import seatbelt_profile


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


def test_status_reports_a_kind_whether_it_works_and_why() -> None:
    status = sandbox_status()
    assert status.kind in {"bubblewrap", "sandbox-exec", "none"}
    assert status.works == (status.kind != "none")
    assert status.reason


def test_no_bwrap_refuses_commands_with_how_to_install_or_opt_in(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap to be found
    monkeypatch.delenv("PUNIE_UNSANDBOXED", raising=False)
    sandbox = detect_sandbox()
    assert (sandbox.kind, sandbox.available) == ("none", False)
    assert "apt-get install bubblewrap" in sandbox.reason
    marker = repo / "ran.txt"
    with pytest.raises(ToolError, match="run_command is refused") as info:
        run_command(Workspace(repo), f"touch {marker}", sandbox=sandbox)
    assert "--unsandboxed" in str(info.value) and "PUNIE_UNSANDBOXED=1" in str(info.value)
    assert not marker.exists()
    monkeypatch.setenv("PUNIE_UNSANDBOXED", "1")  # the config-key opt-in
    opted = detect_sandbox()
    assert opted.kind == "unsandboxed" and opted.available and not opted.confining


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
    sandbox = detect_sandbox(allow_unsandboxed=False)
    assert not sandbox.available
    assert "No permissions to creating new namespace" in sandbox.reason
    assert "user namespaces" in sandbox.reason


def test_opted_in_unsandboxed_runs_with_a_scrubbed_environment(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-do-not-leak")
    result = run_command(Workspace(repo), "echo hi; env", sandbox=UNSANDBOXED)
    assert result.startswith("exit code: 0\nhi\n")
    assert "sk-do-not-leak" not in result
    assert f"HOME={Path.home()}\n" not in result


def test_writes_inside_the_repository_work(repo: Path, sandbox: Sandbox) -> None:
    result = run_command(
        Workspace(repo), "mkdir -p out && echo made > out/new.txt && cat out/new.txt",
        sandbox=sandbox,
    )  # fmt: skip
    assert result == "exit code: 0\nmade\n"
    assert (repo / "out" / "new.txt").read_text() == "made\n"


def test_outside_the_repository_is_invisible_and_unchanged(
    repo: Path, outside_dir: Path, sandbox: Sandbox
) -> None:
    target = outside_dir / "keep.txt"
    target.write_text("original\n")
    ws = Workspace(repo)
    for command in (f"cat {target}", f"echo pwned > {target}", f"touch {outside_dir}/new.txt"):
        result = run_command(ws, command, sandbox=sandbox)
        assert not result.startswith("exit code: 0"), result
        assert "No such file or directory" in result, result
    assert target.read_text() == "original\n"
    assert sorted(p.name for p in outside_dir.iterdir()) == ["keep.txt"]
    # the same write without the sandbox succeeds, so the refusal above is the sandbox's doing
    assert run_command(ws, f"echo changed > {target}", sandbox=UNSANDBOXED).startswith(
        "exit code: 0"
    )
    assert target.read_text() == "changed\n"


def test_system_folders_are_read_only(repo: Path, sandbox: Sandbox) -> None:
    result = run_command(Workspace(repo), "touch /usr/bin/punie-pwned", sandbox=sandbox)
    assert "Read-only file system" in result
    assert not Path("/usr/bin/punie-pwned").exists()


def test_tmp_outside_the_repository_is_private(
    repo: Path, tmp_path: Path, sandbox: Sandbox
) -> None:
    sibling = tmp_path / "sibling.txt"
    sibling.write_text("original\n")
    result = run_command(Workspace(repo), f"echo pwned > {sibling}; cat {sibling}", sandbox=sandbox)
    assert "original" not in result
    assert sibling.read_text() == "original\n"


def test_network_connections_fail(repo: Path, listener: int, sandbox: Sandbox) -> None:
    ws = Workspace(repo)
    assert run_command(ws, _connect_command(listener), sandbox=UNSANDBOXED) == (
        "exit code: 0\nconnected\n"
    )
    result = run_command(ws, _connect_command(listener), sandbox=sandbox)
    assert not result.startswith("exit code: 0"), result
    assert "connected\n" not in result
    assert "ConnectionRefusedError" in result or "unreachable" in result


def test_timeout_kills_sandboxed_commands_too(repo: Path, sandbox: Sandbox) -> None:
    result = run_command(Workspace(repo), "sleep 300", timeout_s=1, sandbox=sandbox)
    assert result.startswith("exit code: none (timed out after 1 s;")


def test_the_repository_python_and_git_work_inside(repo: Path, sandbox: Sandbox) -> None:
    (repo / "tests").mkdir()
    (repo / "tests" / "test_area.py").write_text(
        "from pkg.shapes import Square\n\ndef test_area():\n    assert Square(3).area() == 9\n"
    )
    ws = Workspace(repo)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    result = run_command(
        ws, f"{sys.executable} -m pytest -q -p no:cacheprovider tests", sandbox=sandbox
    )
    assert result.startswith("exit code: 0"), result
    assert "1 passed" in result
    assert run_command(ws, "git status --short", sandbox=sandbox).startswith("exit code: 0")


def test_seatbelt_profile_denies_by_default_and_fences_writes(tmp_path: Path) -> None:
    # sandbox-exec exists only on macOS; here the profile text is what can be checked.
    repo, scratch = tmp_path / 're"po', tmp_path / "scratch"
    profile = seatbelt_profile(repo, scratch, [Path(sys.prefix)])
    lines = profile.splitlines()
    assert lines[:2] == ["(version 1)", "(deny default)"]
    assert "(deny network*)" in lines
    write_rules = [line for line in lines if line.startswith("(allow file-write*")]
    assert len(write_rules) == 2
    escaped = str(repo).replace('"', '\\"')
    assert f'(subpath "{escaped}")' in write_rules[0]
    assert f'(require-not (require-any (subpath "{escaped}/.git")' in write_rules[0]
    assert f'(subpath "{scratch}")' in write_rules[1]
    assert str(Path.home()) + '"' not in profile  # the home folder is never readable
    argv, env = Sandbox("sandbox-exec", True, "", "/usr/bin/sandbox-exec").command(
        ["bash", "-c", "ls"], tmp_path, scratch
    )
    assert argv[:2] == ["/usr/bin/sandbox-exec", "-p"] and argv[3:] == ["bash", "-c", "ls"]
    assert env["HOME"] == str(scratch) and "OPENAI_API_KEY" not in env


def test_repository_under_tmp_with_its_own_venv_works(tmp_path: Path, sandbox: Sandbox) -> None:
    # Issue 9: the sandbox's private /tmp must not hide a checkout or venv that lives there.
    root = tmp_path / "clone"
    root.mkdir()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / ".venv")], check=True)
    (root / "mod.py").write_text("print('from the clone')\n")
    result = run_command(Workspace(root), ".venv/bin/python mod.py", sandbox=sandbox)
    assert result == "exit code: 0\nfrom the clone\n"


def test_sandbox_probe_is_fast_enough_to_run_per_command(repo: Path, sandbox: Sandbox) -> None:
    started = time.monotonic()
    for _ in range(5):
        assert run_command(Workspace(repo), "true", sandbox=sandbox) == "exit code: 0\n"
    assert time.monotonic() - started < 10
