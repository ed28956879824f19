"""The attacks of the security issue, each through the real tools on real files, processes and
bubblewrap (numbers are the issue's)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from attack_tools import folder_swapped_for_symlink, git_repo_with_hook, processes_with
from sandbox_helpers import UNSANDBOXED

from punie.errors import ToolError
from punie.runtime.tools import Sandbox, Workspace, grep, read_file, run_command, write_file

# 2. .git (and the other control paths) are read-only to every tool


@pytest.mark.parametrize(
    "path",
    [".git/config", ".git/hooks/pre-commit", ".GIT/config", "./.git/../.git/config",
     ".venv/lib/site.pth", "sub/.git/config", ".vscode/tasks.json"],
)  # fmt: skip
def test_write_file_refuses_control_paths(repo: Path, path: str) -> None:
    git_repo_with_hook(repo)
    before = (repo / ".git" / "config").read_text()
    with pytest.raises(ToolError, match="which no tool may change"):
        write_file(Workspace(repo), path, "[core]\n\tfsmonitor = touch /tmp/pwned\n")
    assert (repo / ".git" / "config").read_text() == before
    assert not (repo / ".venv").exists() and not (repo / "sub").exists()


def test_write_file_refuses_a_symlink_into_git(repo: Path) -> None:
    git_repo_with_hook(repo)
    (repo / "hooks").symlink_to(repo / ".git" / "hooks", target_is_directory=True)
    with pytest.raises(ToolError, match="which no tool may change"):
        write_file(Workspace(repo), "hooks/pre-commit", "#!/bin/sh\ntouch /tmp/pwned\n")
    with pytest.raises(ToolError, match="which no tool may change"):
        write_file(Workspace(repo), "hooks/new/post-checkout", "x")
    assert "pwned" not in (repo / ".git" / "hooks" / "pre-commit").read_text()
    assert not (repo / ".git" / "hooks" / "new").exists()


def test_sandboxed_git_config_cannot_set_fsmonitor(repo: Path, sandbox: Sandbox) -> None:
    git_repo_with_hook(repo)
    before = (repo / ".git" / "config").read_text()
    ws = Workspace(repo)
    result = run_command(ws, "git config core.fsmonitor 'touch /tmp/pwned'", sandbox=sandbox)
    assert not result.startswith("exit code: 0"), result
    result = run_command(ws, "echo 'touch /tmp/pwned' > .git/hooks/pre-commit", sandbox=sandbox)
    assert "Read-only file system" in result
    assert (repo / ".git" / "config").read_text() == before
    assert "fsmonitor" not in (repo / ".git" / "config").read_text()
    assert run_command(ws, "git status --short", sandbox=sandbox).startswith("exit code: 0")


def test_reads_of_git_stay_allowed(repo: Path) -> None:
    git_repo_with_hook(repo)
    assert "[core]" in read_file(Workspace(repo), ".git/config")


# 3. secrets never reach a command


@pytest.mark.parametrize("confined", [True, False])
def test_commands_get_no_keys_tokens_or_cloud_credentials(
    repo: Path, monkeypatch: pytest.MonkeyPatch, confined: bool, request: pytest.FixtureRequest
) -> None:
    secrets = {
        "OPENAI_API_KEY": "sk-live-1", "AWS_SECRET_ACCESS_KEY": "aws-2", "GITHUB_TOKEN": "ghp-3",
        "HF_TOKEN": "hf-4", "GOOGLE_APPLICATION_CREDENTIALS": "/keys/gcp-5.json",
    }  # fmt: skip
    for key, value in secrets.items():
        monkeypatch.setenv(key, value)
    sandbox = request.getfixturevalue("sandbox") if confined else UNSANDBOXED
    result = run_command(Workspace(repo), "env; echo HOME=$HOME", sandbox=sandbox)
    assert result.startswith("exit code: 0")
    for key, value in secrets.items():
        assert key not in result and value not in result
    names = {line.split("=", 1)[0] for line in result.splitlines()[1:] if "=" in line}
    assert names <= {"PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ", "TMPDIR",
                     "PWD", "SHLVL", "_", "OLDPWD"}  # fmt: skip
    assert f"HOME={Path.home()}\n" not in result


# 5. bubblewrap leaks


def test_home_and_keys_are_not_visible(repo: Path, sandbox: Sandbox) -> None:
    key = Path.home() / f".punie-test-key-{os.getpid()}"
    key.write_text("PRIVATE KEY MATERIAL\n")
    try:
        result = run_command(
            Workspace(repo), f"ls -a {key.parent}; cat {key} /etc/shadow", sandbox=sandbox
        )
    finally:
        key.unlink()
    assert "PRIVATE KEY MATERIAL" not in result
    assert f"\n{key.name}\n" not in result  # not even listed
    assert "root:" not in result  # no /etc/shadow line


def test_a_unix_socket_outside_tmp_is_unreachable(
    repo: Path, outside_dir: Path, sandbox: Sandbox
) -> None:
    path = outside_dir / "agent.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen(1)
        code = (
            "import socket; s = socket.socket(socket.AF_UNIX); "
            f"s.connect({str(path)!r}); print('connected')"
        )
        result = run_command(Workspace(repo), f'{sys.executable} -c "{code}"', sandbox=sandbox)
        assert "connected\n" not in result and not result.startswith("exit code: 0")
        unconfined = run_command(
            Workspace(repo), f'{sys.executable} -c "{code}"', sandbox=UNSANDBOXED
        )
        assert "connected" in unconfined  # the socket is real


def test_setsid_daemons_do_not_outlive_the_command(repo: Path, sandbox: Sandbox) -> None:
    marker = f"punie-daemon-{os.getpid()}-{time.monotonic_ns()}"
    daemon = f"{sys.executable} -c 'import time; time.sleep(300)' {marker}"
    result = run_command(
        Workspace(repo), f"setsid -f {daemon}; nohup {daemon} >/dev/null 2>&1 & echo ok",
        sandbox=sandbox,
    )  # fmt: skip
    assert result.startswith("exit code: 0")
    deadline = time.monotonic() + 5
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with(marker) == []


def test_no_capabilities_and_no_host_processes_even_as_root(
    repo: Path, outside_dir: Path, sandbox: Sandbox
) -> None:
    ws = Workspace(repo)
    caps = run_command(ws, "grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status", sandbox=sandbox)
    assert caps.count("0000000000000000") == 3, caps
    target = outside_dir / "via-proc.txt"
    result = run_command(
        ws, f"ls /proc | grep -c '^[0-9]'; echo pwned > /proc/1/root{target}", sandbox=sandbox
    )
    assert int(result.splitlines()[1]) < 10  # only the sandbox's own processes
    assert not target.exists()


# 6. check-then-open races: a helper swapping a folder for a symlink


def test_a_folder_swapped_for_a_symlink_never_leaks(repo: Path, outside_dir: Path) -> None:
    (outside_dir / "secret.txt").write_text("OUTSIDE SECRET\n")
    (repo / "d").mkdir()
    (repo / "d" / "secret.txt").write_text("inside\n")
    ws = Workspace(repo)
    reads = leaks = 0
    with folder_swapped_for_symlink(repo / "d", outside_dir) as helper:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            try:
                text = read_file(ws, "d/secret.txt")
                reads += 1
                leaks += "OUTSIDE" in text
            except ToolError:
                pass
            with contextlib.suppress(ToolError):
                write_file(ws, "d/written.txt", "x")
        assert helper.poll() is None, "the swapping helper died: the race was not run"
    assert reads > 0
    assert leaks == 0
    assert sorted(p.name for p in outside_dir.iterdir()) == ["secret.txt"]


# 7. crashes a model can trigger: each is one ToolError


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda ws: read_file(ws, "a/" * 3000), "characters long"),
        (lambda ws: read_file(ws, "n" * 300), "a name of 300 characters"),
        (lambda ws: write_file(ws, "n" * 300, "x"), "a name of 300 characters"),
        (lambda ws: read_file(ws, "loop/x"), "symlink loop"),
        (lambda ws: read_file(ws, "bad\x00name"), "NUL byte"),
        (lambda ws: grep(ws, "a\x00b"), "NUL byte"),
        (lambda ws: grep(ws, "a", glob="*\x00.py"), "NUL byte"),
        (lambda ws: grep(ws, "a" * 1_000_000), "1,000,000 characters"),
        (lambda ws: run_command(ws, "ls\x00rm -rf /"), "NUL byte"),
        (lambda ws: grep(ws, "x", "loop"), "symlink loop"),
    ],
)
def test_inputs_that_crashed_are_tool_errors(repo: Path, call, message: str) -> None:
    (repo / "loop").symlink_to("loop")
    with pytest.raises(ToolError, match=message):
        call(Workspace(repo))


# 8. hangs and memory


def test_fifos_are_refused_at_once(repo: Path) -> None:
    os.mkfifo(repo / "pipe")
    ws = Workspace(repo)
    started = time.monotonic()
    with pytest.raises(ToolError, match="FIFO"):
        read_file(ws, "pipe")
    with pytest.raises(ToolError, match="FIFO"):
        grep(ws, "x", "pipe")
    with pytest.raises(ToolError, match="special file"):
        write_file(ws, "pipe", "x")
    assert "pkg/shapes.py:6:" in grep(ws, "Square", ".")  # a walk skips the FIFO
    assert time.monotonic() - started < 10


def test_grep_never_runs_past_its_timeout(repo: Path) -> None:
    big = repo / "big.txt"
    with big.open("w") as handle:
        for _ in range(200):
            handle.write(("a" * 99 + "\n") * 10_000)
    started = time.monotonic()
    with pytest.raises(ToolError, match="took over"):
        grep(Workspace(repo), "(a+)+$b|" * 50 + "z", timeout_s=0.3)
    assert time.monotonic() - started < 5


def test_a_2gb_sparse_file_reads_in_bounded_memory(repo: Path) -> None:
    sparse = repo / "sparse.log"
    with sparse.open("wb") as handle:
        handle.write(b"header line\n" * 1000)
        handle.truncate(2 * 1024**3)
    code = textwrap.dedent(
        f"""
        from punie.runtime.tools import Workspace, read_file
        text = read_file(Workspace({str(repo)!r}), "sparse.log", start_line=999)
        assert text.startswith("header line\\nheader line\\n"), text[:80]
        tail = read_file(Workspace({str(repo)!r}), "sparse.log", start_line=1001)
        # VmHWM is this program's own peak (ru_maxrss would include the forking parent's)
        hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
        print("RSS_KB", hwm)
        print(tail[-200:])
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    peak_kb = int(done.stdout.split("RSS_KB ", 1)[1].split()[0])
    assert peak_kb < 200_000, f"peak RSS (VmHWM) {peak_kb:,} kB"
    assert "truncated" in done.stdout
