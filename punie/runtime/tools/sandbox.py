"""The command sandbox: what `run_command` (and `grep`) run inside, on every platform.

- Linux: bubblewrap with a deny-by-default view: read-only system folders and interpreters,
  the repository read-write except its control paths (`.git`, `.venv`, ...), a private `/tmp`
  and home, no network, all namespaces unshared (a PID namespace kills daemons with the
  command), no capabilities even as root, a new session, dying with its parent.
- macOS: `sandbox-exec` with an equivalent Seatbelt profile (`seatbelt_profile`).
- Neither: `kind == "none"`, `available` False, and `run_command` refuses with `reason`, unless
  the user opted in to running unsandboxed (`--unsandboxed` or `PUNIE_UNSANDBOXED=1`).

`sandbox_status()` is what `punie doctor` calls: the kind, whether it works, and why not.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import structlog

from punie.runtime.tools.policy import CONTROL_NAMES

log = structlog.get_logger(__name__)

_PROBE_TIMEOUT_S = 10.0
UNSANDBOXED_ENV = "PUNIE_UNSANDBOXED"
"""Set to 1 to let commands run without a sandbox where none works (the config-key opt-in)."""
SANDBOX_HOME = "/tmp/.punie-home"
"""HOME inside the bubblewrap sandbox (on its private /tmp)."""
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# The /etc entries programs need (loader, users, locale, time, TLS roots, git and shell
# defaults); nothing else of /etc (shadow, ssh keys, credentials) is visible.
_ETC_ENTRIES = (
    "alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group",
    "nsswitch.conf", "localtime", "timezone", "ssl", "ca-certificates", "os-release",
    "debian_version", "mime.types", "magic", "magic.mime", "gitconfig", "bash.bashrc",
    "profile", "inputrc", "locale.alias", "terminfo", "protocols", "services", "hosts",
    "host.conf", "gai.conf", "python3", "python3.11", "pip.conf",
)  # fmt: skip
_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ")
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
HOW_TO_GET_ONE = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install "
    "bubblewrap), or opt in to running commands unsandboxed with --unsandboxed "
    f"(or {UNSANDBOXED_ENV}=1)"
)


class SandboxStatus(NamedTuple):
    """What `punie doctor` shows: the sandbox kind, whether it works, and why not."""

    kind: str
    works: bool
    reason: str


@dataclass(frozen=True)
class Sandbox:
    """How commands are confined.

    `kind` is "bubblewrap", "sandbox-exec", "unsandboxed" (the user opted in to no sandbox) or
    "none" (nothing works and no opt-in: commands are refused with `reason`).
    """

    kind: str
    available: bool
    reason: str
    executable: str = ""
    extra_read_only: tuple[str, ...] = field(default=())

    @classmethod
    def unsandboxed(cls, why: str = "") -> Sandbox:
        """The explicit opt-in: commands run on the host, with only the scrubbed environment."""
        reason = "opted in to running commands unsandboxed" + (f" ({why})" if why else "")
        return cls("unsandboxed", True, reason)

    @property
    def confining(self) -> bool:
        """Whether commands run inside a real sandbox."""
        return self.available and self.kind in {"bubblewrap", "sandbox-exec"}

    def describe(self) -> str:
        """The sandbox as the trace records it."""
        return self.kind if self.confining else f"{self.kind} ({self.reason})"

    def command(
        self, argv: Sequence[str], root: Path, scratch: Path, *, extra: Iterable[Path] = ()
    ) -> tuple[list[str], dict[str, str]]:
        """The argv and environment that run `argv` confined to `root`.

        `scratch` is a private host folder for HOME/TMPDIR where the sandbox has no private
        /tmp of its own (sandbox-exec, unsandboxed); `extra` are more read-only paths the
        command needs (such as the ripgrep binary's folder).
        """
        repo = Path(root).resolve()
        reads = [*interpreter_paths(repo), *(Path(p) for p in self.extra_read_only), *extra]
        if self.kind == "bubblewrap" and self.available:
            env = scrubbed_env(SANDBOX_HOME, "/tmp")
            return bwrap_argv(self.executable, list(argv), repo, reads), env
        env = scrubbed_env(str(scratch), str(scratch))
        if self.kind == "sandbox-exec" and self.available:
            profile = seatbelt_profile(repo, Path(scratch).resolve(), reads)
            return [self.executable, "-p", profile, *argv], env
        if self.kind == "unsandboxed":
            return list(argv), env
        raise RuntimeError(f"no sandbox to run commands in: {self.reason}")


def scrubbed_env(home: str, tmpdir: str) -> dict[str, str]:
    """The only environment commands get: PATH, locale and terminal, HOME and TMPDIR.

    Never API keys, tokens or cloud credentials, whatever the parent holds.
    """
    env = {key: os.environ[key] for key in _ENV_KEEP if key in os.environ}
    env.setdefault("PATH", _DEFAULT_PATH)
    env.setdefault("LANG", "C.UTF-8")
    env["HOME"] = home
    env["TMPDIR"] = tmpdir
    return env


def interpreter_paths(repo: Path) -> list[Path]:
    """Folders outside the system ones that commands need to read: Punie's interpreter and
    virtual environment, and the interpreter behind the repository's own `.venv`."""
    found: list[Path] = []
    for prefix in (sys.prefix, sys.base_prefix, sys.exec_prefix):
        found.append(Path(prefix))
    found.append(Path(os.path.realpath(sys.executable)).parent.parent)
    config = repo / ".venv" / "pyvenv.cfg"
    try:
        for line in config.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home" and value.strip():
                home = Path(os.path.realpath(value.strip()))
                found.append(home.parent if home.name == "bin" else home)
    except OSError:
        pass
    return found


def _keep_read_only(paths: Iterable[Path], repo: Path) -> list[str]:
    """Existing, de-duplicated paths, minus those already visible and any home folder itself."""
    homes = {Path(os.path.expanduser("~")).resolve(), Path("/home"), Path("/root"), Path("/")}
    kept: list[str] = []
    for path in paths:
        try:
            real = Path(os.path.realpath(path))
        except (OSError, ValueError):
            continue
        if not real.exists() or real in homes or real.is_relative_to(repo):
            continue
        if any(real.is_relative_to(d) for d in _SYSTEM_DIRS if not os.path.islink(d)):
            continue
        text = str(real)
        if text not in kept:
            kept.append(text)
    return kept


def bwrap_argv(executable: str, argv: list[str], repo: Path, reads: Iterable[Path]) -> list[str]:
    """The bubblewrap command line for `argv` in `repo` (see the module docstring)."""
    args = [
        executable,
        "--unshare-all", "--unshare-user", "--cap-drop", "ALL",
        "--die-with-parent", "--new-session",
        "--hostname", "punie-sandbox",
    ]  # fmt: skip
    for system in _SYSTEM_DIRS:
        if os.path.islink(system):
            args += ["--symlink", os.readlink(system), system]
        elif os.path.isdir(system):
            args += ["--ro-bind", system, system]
    for entry in _ETC_ENTRIES:
        args += ["--ro-bind-try", f"/etc/{entry}", f"/etc/{entry}"]
    args += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--dir", SANDBOX_HOME]
    # After the private /tmp, so interpreters and a repository under /tmp stay visible.
    for path in _keep_read_only(reads, repo):
        args += ["--ro-bind", path, path]
    args += ["--bind", str(repo), str(repo)]
    for path in control_paths(repo):
        args += ["--ro-bind", path, path]
    return [*args, "--chdir", str(repo), "--", *argv]


def control_paths(repo: Path) -> list[str]:
    """The repository's control paths that exist (and a worktree's git folders), to be bound
    read-only: writing them would run code on the host (`core.fsmonitor`, hooks, `.pth`)."""
    paths: list[str] = []
    for name in CONTROL_NAMES:
        path = repo / name
        if os.path.lexists(path) and not path.is_symlink():
            paths.append(str(path))
    dotgit = repo / ".git"
    if dotgit.is_file() and not dotgit.is_symlink():  # a worktree: `gitdir: <elsewhere>`
        try:
            line = dotgit.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            line = ""
        if line.startswith("gitdir:"):
            gitdir = (repo / line.removeprefix("gitdir:").strip()).resolve()
            paths.append(str(gitdir))
            common = gitdir / "commondir"
            if common.is_file():
                paths.append(str((gitdir / common.read_text().strip()).resolve()))
    return [p for p in paths if os.path.exists(p)]


def _sbpl(text: str) -> str:
    """A Seatbelt (SBPL) string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def seatbelt_profile(repo: Path, scratch: Path, reads: Iterable[Path]) -> str:
    """The macOS `sandbox-exec` profile: deny by default; read system folders, interpreters and
    the repository; write only the repository (not its control paths) and a private scratch
    folder (HOME and TMPDIR); no network."""
    read_paths = ["/usr", "/bin", "/sbin", "/System", "/Library/Developer/CommandLineTools",
                  "/private/etc", "/private/var/db/timezone", "/opt/homebrew", "/dev",
                  *_keep_read_only(reads, repo)]  # fmt: skip
    reads_sb = " ".join(f"(subpath {_sbpl(p)})" for p in read_paths)
    controls = " ".join(f"(subpath {_sbpl(str(repo / name))})" for name in CONTROL_NAMES)
    return "\n".join(
        [
            "(version 1)",
            "(deny default)",
            "(allow process-exec process-fork)",
            "(allow signal (target same-sandbox))",
            "(allow process-info* (target same-sandbox))",
            "(allow sysctl-read)",
            "(allow ipc-posix-sem)",
            '(allow mach-lookup (global-name "com.apple.system.opendirectoryd.libinfo"))',
            "(allow file-read-metadata)",
            '(allow file-read* (literal "/"))',
            f"(allow file-read* {reads_sb})",
            f"(allow file-read* (subpath {_sbpl(str(repo))}) (subpath {_sbpl(str(scratch))}))",
            f"(allow file-write* (require-all (subpath {_sbpl(str(repo))}) "
            f"(require-not (require-any {controls}))))",
            f"(allow file-write* (subpath {_sbpl(str(scratch))}))",
            '(allow file-write-data (literal "/dev/null") (literal "/dev/tty"))',
            "(deny network*)",
        ]
    )


def _probe(sandbox: Sandbox) -> str | None:
    """Run `true` in the sandbox; None when it worked, else why not."""
    with tempfile.TemporaryDirectory(prefix="punie-probe-") as name:
        argv, env = sandbox.command(["true"], Path(name), Path(name))
        try:
            probe = subprocess.run(
                argv, capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S,
                stdin=subprocess.DEVNULL, env=env, check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{sandbox.executable} could not be started as a sandbox probe: {exc}"
    if probe.returncode == 0:
        return None
    return probe.stderr.strip() or f"exit code {probe.returncode}"


def _real_sandbox() -> Sandbox:
    """The platform's sandbox when it works here; otherwise kind "none" and why not."""
    if sys.platform == "darwin":
        executable = shutil.which("sandbox-exec") or (
            "/usr/bin/sandbox-exec" if os.path.exists("/usr/bin/sandbox-exec") else None
        )
        if executable is None:
            return Sandbox("none", False, f"sandbox-exec not found: {HOW_TO_GET_ONE}")
        candidate = Sandbox(
            "sandbox-exec", True, "sandbox-exec: reads and writes fenced, no network", executable
        )
        failure = _probe(candidate)
        if failure is None:
            return candidate
        return Sandbox("none", False, f"sandbox-exec cannot sandbox here ({failure})", executable)
    if not sys.platform.startswith("linux"):
        return Sandbox("none", False, f"no sandbox for {sys.platform}: {HOW_TO_GET_ONE}")
    executable = shutil.which("bwrap")
    if executable is None:
        return Sandbox("none", False, f"bwrap not found on PATH: {HOW_TO_GET_ONE}")
    candidate = Sandbox(
        "bubblewrap",
        True,
        "bubblewrap: system read-only, repository writable except .git, private /tmp and "
        "home, no network, own PID namespace, no capabilities",
        executable,
    )
    failure = _probe(candidate)
    if failure is None:
        return candidate
    reason = (
        f"{executable} cannot create a sandbox here ({failure}): unprivileged user namespaces "
        "are probably disabled (sysctl kernel.unprivileged_userns_clone=1, or run the container "
        "with user namespaces allowed); or opt in with --unsandboxed"
    )
    return Sandbox("none", False, reason, executable)


def unsandboxed_opt_in() -> bool:
    """Whether the environment opts in to unsandboxed commands (`PUNIE_UNSANDBOXED=1`)."""
    return os.environ.get(UNSANDBOXED_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def detect_sandbox(*, allow_unsandboxed: bool | None = None) -> Sandbox:
    """The sandbox commands run in: the platform's when it works; else the unsandboxed opt-in
    when allowed (the argument, or `PUNIE_UNSANDBOXED=1`); else "none", which refuses."""
    sandbox = _real_sandbox()
    if sandbox.available:
        log.info("sandbox_ready", kind=sandbox.kind, executable=sandbox.executable)
        return sandbox
    allowed = unsandboxed_opt_in() if allow_unsandboxed is None else allow_unsandboxed
    if allowed:
        log.warning("sandbox_opted_out", reason=sandbox.reason)
        return Sandbox.unsandboxed(sandbox.reason)
    log.warning("sandbox_unavailable", reason=sandbox.reason)
    return sandbox


def sandbox_status() -> SandboxStatus:
    """For `punie doctor`: which sandbox this machine has, whether it works, and why not."""
    sandbox = _real_sandbox()
    return SandboxStatus(sandbox.kind, sandbox.available, sandbox.reason)


_DEFAULT: dict[str, Sandbox] = {}


def default_sandbox() -> Sandbox:
    """`detect_sandbox()`, probed once per PATH and opt-in setting (for callers that pass none)."""
    key = f"{os.environ.get('PATH', '')}\0{unsandboxed_opt_in()}"
    if key not in _DEFAULT:
        _DEFAULT[key] = detect_sandbox()
    return _DEFAULT[key]
