"""Peak memory of `mlx_lm server` under concurrent tool-calling chats, setting by setting.

Each setting serves the embedded SmolLM2-135M (a random LoRA adapter, or that adapter fused)
through `punie.mlx.server.serve_model`, fires agent-like chats (Punie's system prompt, its tool
schemas, a few turns that grow with tool results of varied length) from N client threads until
a fixed number of requests is answered, and samples the server's /proc/PID/status (VmRSS,
RssAnon) every second, next to MLX's allocator counters and the prompt cache's own size, which
the child prints. Prints one row per setting:

    uv run python tools/bench/server_memory.py --requests 24
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from punie.mlx.blas import choose_blas
from punie.mlx.child import MemoryPolicy
from punie.mlx.server import ServerMemory, serve_model
from punie.records.toolset import SYSTEM_PROMPT, code_tool_schemas

MB = 1 << 20
_LOCK = threading.Lock()
QUESTIONS = [
    "Where is the Square class defined?",
    "What does area() return for a square?",
    "List the files in the package.",
    "Which functions call read_text?",
    "What is the capital of France?",
    "Find every TODO in the repository and summarise them.",
    "How are shapes tested?",
    "Explain what the README says about squares.",
]


@dataclass(frozen=True)
class Setting:
    label: str
    adapter: str  # "none" | "lora" | "fused"
    concurrency: int
    memory: ServerMemory | None  # None: mlx-lm's own defaults, no limits at all


def _conversation(
    client: httpx.Client, base_url: str, model: str, rng: random.Random, left: list[int]
) -> int:
    """One agent-like run of up to 3 requests (while `left[0]` > 0); returns how many."""
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": rng.choice(QUESTIONS)},
    ]
    done = 0
    for turn in range(3):
        with _LOCK:
            if left[0] <= 0:
                return done
            left[0] -= 1
        reply = client.post(
            f"{base_url}/chat/completions",
            json={
                "model": model,
                "messages": messages,
                "tools": code_tool_schemas(),
                "max_tokens": 96,
                "temperature": 0.7,
                "stop": ["<|im_end|>", "<|im_start|>"],
            },
        )
        reply.raise_for_status()
        done += 1
        text = reply.json()["choices"][0]["message"].get("content") or ""
        call_id = f"call_{turn}"
        messages.append(
            {
                "role": "assistant",
                "content": text,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": "grep", "arguments": '{"pattern": "area"}'},
                    }
                ],
            }
        )
        # Tool results as the eval sees them: mostly short, some a whole file: batched
        # sequences of very different lengths.
        lines = rng.choice([4, 12, 40, 120])
        result = "\n".join(f"pkg/mod{i}.py:{i}: def area(self): return {i}" for i in range(lines))
        messages.append({"role": "tool", "tool_call_id": call_id, "content": result})
    return done


def _status_kb(pid: int) -> dict[str, int]:
    fields = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "VmHWM"):
                fields[key] = int(value.split()[0])
    except FileNotFoundError:
        pass
    return fields


def _mlx_stats(log_path: Path) -> dict[str, int]:
    peak: dict[str, int] = {}
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith("punie-mlx-stats "):
            for key, value in json.loads(line.split(" ", 1)[1]).items():
                peak[key] = max(peak.get(key, 0), value)
    return peak


def _last_stats(log_path: Path) -> dict[str, int]:
    lines = [
        line
        for line in log_path.read_text(errors="replace").splitlines()
        if line.startswith("punie-mlx-stats ")
    ]
    return json.loads(lines[-1].split(" ", 1)[1]) if lines else {}


def run_setting(setting: Setting, model: Path, adapters: dict[str, Path], requests: int) -> dict:
    served = adapters["fused"] if setting.adapter == "fused" else model
    adapter = adapters["lora"] if setting.adapter == "lora" else None
    memory = setting.memory or ServerMemory.unbounded()
    with serve_model(served, adapter=adapter, memory=memory, stats_every_s=1.0) as server:
        left = [requests]
        answered = [0] * setting.concurrency
        errors: list[str] = []

        def client(index: int) -> None:
            rng = random.Random(index)
            with httpx.Client(timeout=1200) as http:
                while left[0] > 0:
                    try:
                        answered[index] += _conversation(
                            http, server.base_url, server.request_model, rng, left
                        )
                    except httpx.HTTPError as exc:
                        errors.append(f"{type(exc).__name__}: {exc}")
                        return

        threads = [threading.Thread(target=client, args=(i,)) for i in range(setting.concurrency)]
        for thread in threads:
            thread.start()
        peak = {"VmRSS": 0, "RssAnon": 0}
        started = time.monotonic()
        while any(t.is_alive() for t in threads):
            now = _status_kb(server.pid)
            for key in peak:
                peak[key] = max(peak[key], now.get(key, 0))
            time.sleep(1.0)
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        time.sleep(3.0)  # idle: what is left is held, not in flight
        end_rss = _status_kb(server.pid).get("VmRSS", 0)
        stats = _mlx_stats(server.log_path) if server.log_path else {}
        last = _last_stats(server.log_path) if server.log_path else {}
    return {
        "setting": setting.label,
        "requests": sum(answered),
        "seconds": round(elapsed),
        "peak_rss_mb": peak["VmRSS"] // 1024,
        "peak_anon_mb": peak["RssAnon"] // 1024,
        "idle_rss_mb": end_rss // 1024,
        "idle_active_mb": last.get("mlx_active", 0) // MB,
        "peak_active_mb": stats.get("mlx_active", 0) // MB,
        "mlx_cache_mb": stats.get("mlx_cache", 0) // MB,
        "prompt_cache_mb": stats.get("prompt_cache_bytes", 0) // MB,
        "errors": len(errors) if not errors else f"{len(errors)} ({errors[0]})",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=24, help="per setting")
    parser.add_argument("--only", nargs="*", help="labels to run (default: all)")
    args = parser.parse_args()

    from model_helpers import write_random_adapter

    from punie.mlx.embedded import embedded_model_dir
    from punie.mlx.train.fuse import fuse

    bounded = ServerMemory()
    cache_only = ServerMemory(
        child=MemoryPolicy(cache_limit_bytes=64 * MB, max_rss_bytes=None),
        prompt_cache_bytes=None,
        fixed=False,
    )
    materialized = ServerMemory(child=MemoryPolicy.unbounded(), prompt_cache_bytes=None)
    settings = [
        Setting("base c4 unbounded", "none", 4, None),
        Setting("lora c1 unbounded", "lora", 1, None),
        Setting("lora c4 unbounded", "lora", 4, None),
        Setting("lora c4 mlx-cache-64MB", "lora", 4, cache_only),
        Setting("lora c4 materialized", "lora", 4, materialized),
        Setting("lora c4 default", "lora", 4, bounded),
        Setting("base c4 default", "none", 4, bounded),
        Setting("fused c4 default", "fused", 4, bounded),
    ]
    if args.only:
        settings = [s for s in settings if s.label in args.only]
    model = embedded_model_dir()
    with tempfile.TemporaryDirectory(prefix="punie-bench-") as tmp:
        lora = write_random_adapter(model, Path(tmp) / "adapter", num_layers=8)
        adapters = {"lora": lora}
        if any(s.adapter == "fused" for s in settings):
            adapters["fused"] = fuse(lora, Path(tmp) / "fused", model=str(model))
        print(f"BLAS: {choose_blas().name}; CPU: {_cpu()}; {args.requests} requests per setting")
        print(f"default = {bounded}")
        header = ("setting", "requests", "seconds", "peak_rss_mb", "peak_anon_mb",
                  "peak_active_mb", "idle_rss_mb", "idle_active_mb", "mlx_cache_mb",
                  "prompt_cache_mb", "errors")  # fmt: skip
        print(" | ".join(header))
        for setting in settings:
            row = run_setting(setting, model, adapters, args.requests)
            print(" | ".join(str(row[h]) for h in header), flush=True)


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()} x{_cores()}"
    return "unknown"


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
