"""The child side of `punie.mlx.child`: `python -m punie.mlx.entry main|call TARGET ...`.

Before running its target, the child makes sure it dies with its parent (Linux
`PR_SET_PDEATHSIG` and a watchdog on the parent pid, which also covers a parent that ended
between fork and exec), applies MLX memory limits from the environment and routes MLX's CPU
attention through `punie.mlx.attention` (unless ``PUNIE_MLX_ATTENTION=stock``):

- ``main MODULE:FUNC ARGS...`` runs a command-line entry point with ``sys.argv`` set to ARGS
  (``mlx_lm.server:main``, ``mlx_lm.fuse:main``);
- ``call MODULE:FUNC REQUEST RESPONSE`` calls ``FUNC(**request)`` and writes
  ``{"result": ...}`` or ``{"error": {"type", "message"}}`` (a PunieError) to RESPONSE.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

PARENT_ENV = "PUNIE_MLX_PARENT"
PDEATHSIG_ENV = "PUNIE_MLX_PDEATHSIG"
CACHE_LIMIT_ENV = "PUNIE_MLX_CACHE_LIMIT"
MEMORY_LIMIT_ENV = "PUNIE_MLX_MEMORY_LIMIT"
STATS_ENV = "PUNIE_MLX_STATS_S"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_WATCH_S = 0.5


def die_with_parent(parent: int, *, pdeathsig: bool = True) -> None:
    """Exit (SIGKILL) as soon as process `parent` is gone, however it ended.

    `pdeathsig`: also ask the kernel for it (instant), which is right only when the parent
    started us from its main thread: the kernel signals when the forking *thread* exits.
    """
    if pdeathsig and sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent ended before we got here
        os.kill(os.getpid(), signal.SIGKILL)

    def watch() -> None:
        # PDEATHSIG fires when the parent *thread* that forked us exits; reparenting (this
        # check) happens only when the whole parent process has gone.
        while os.getppid() == parent:
            time.sleep(_WATCH_S)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="punie-parent-watch", daemon=True).start()


def apply_mlx_limits(environ: dict[str, str] | os._Environ[str] = os.environ) -> None:
    """Set MLX's buffer-cache and memory limits (bytes) from the environment, if given."""
    cache, memory = environ.get(CACHE_LIMIT_ENV), environ.get(MEMORY_LIMIT_ENV)
    if cache is None and memory is None:
        return
    import mlx.core as mx

    if memory is not None:
        mx.set_memory_limit(int(memory))
    if cache is not None:
        mx.set_cache_limit(int(cache))


def start_stats(environ: dict[str, str] | os._Environ[str] = os.environ) -> None:
    """Print MLX's memory counters every `PUNIE_MLX_STATS_S` seconds (after imports are done:
    a thread importing what the main thread imports can deadlock)."""
    if (every := environ.get(STATS_ENV)) is not None:
        threading.Thread(
            target=_report_stats, args=(float(every),), name="punie-mlx-stats", daemon=True
        ).start()


def _report_stats(every_s: float) -> None:
    """Print MLX's allocator counters (bytes) as one JSON line every `every_s` seconds."""
    import mlx.core as mx

    while True:
        time.sleep(every_s)
        line = {
            "mlx_active": mx.get_active_memory(),
            "mlx_cache": mx.get_cache_memory(),
            "mlx_peak": mx.get_peak_memory(),
            **_prompt_cache_stats(),
        }
        print(f"punie-mlx-stats {json.dumps(line)}", file=sys.stderr, flush=True)


def _prompt_cache_stats() -> dict[str, int]:
    """What an mlx-lm server's prompt cache says it holds (entries, bytes), if there is one."""
    import gc

    module = sys.modules.get("mlx_lm.models.cache")
    if module is None:
        return {}
    for thing in gc.get_objects():
        if isinstance(thing, module.LRUPromptCache):
            return {"prompt_cache_entries": len(thing), "prompt_cache_bytes": thing.nbytes}
    return {}


def _target(spec: str) -> Callable[..., Any]:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def _call(spec: str, request: Path, response: Path) -> int:
    from punie.errors import PunieError

    arguments = json.loads(request.read_text(encoding="utf-8"))
    try:
        result = _target(spec)(**arguments)
    except PunieError as exc:
        body: dict[str, Any] = {"error": {"type": type(exc).__name__, "message": str(exc)}}
        response.write_text(json.dumps(body), encoding="utf-8")
        return 2
    except Exception as exc:  # reported to the parent with the traceback in the log
        traceback.print_exc()
        body = {"error": {"type": type(exc).__name__, "message": f"{type(exc).__name__}: {exc}"}}
        response.write_text(json.dumps(body), encoding="utf-8")
        return 1
    response.write_text(json.dumps({"result": result}), encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if PARENT_ENV in os.environ:
        die_with_parent(int(os.environ[PARENT_ENV]), pdeathsig=os.environ.get(PDEATHSIG_ENV) == "1")
    apply_mlx_limits()
    from punie.mlx.attention import install

    install()  # blocked causal attention unless PUNIE_MLX_ATTENTION=stock
    mode, spec, rest = args[0], args[1], args[2:]
    if mode == "call":
        return _call(spec, Path(rest[0]), Path(rest[1]))
    if mode == "main":
        sys.argv = [spec.partition(":")[0], *rest]
        target = _target(spec)
        start_stats()
        code = target()
        return code if isinstance(code, int) else 0
    raise SystemExit(f"punie.mlx.entry: unknown mode {mode!r} (main or call)")


if __name__ == "__main__":
    sys.exit(main())
