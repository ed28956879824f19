"""Benchmark: two mlx-lm servers answering at once, with the BLAS's default workers vs each
capped at `cores_each(2)` (what `evaluate --together`, the demo's base + tuned eval, does).

Each server gets `--requests` concurrent chat requests (a ~900-token prompt, `--max-tokens`
greedy tokens); the wall time of all of them is compared side by side in one run:

    uv run python tools/bench/shared_servers.py --requests 4 --max-tokens 40
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from punie.mlx.blas import choose_blas
from punie.mlx.embedded import embedded_model_dir
from punie.mlx.machine import cores_each, cpu_count, cpu_model
from punie.mlx.server import serve_model

PROMPT = " ".join(f"line {i}: def function_{i}(x): return x" for i in range(60))


def _ask(base_url: str, model: str, max_tokens: int) -> int:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": f"{PROMPT}\nWhere is function_7?"}],
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    request = urllib.request.Request(
        f"{base_url}/chat/completions",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=1800) as response:
        return int(json.load(response)["usage"]["completion_tokens"])


def _round(model: Path, threads: int | None, requests: int, max_tokens: int) -> float:
    """Seconds for two servers (BLAS workers `threads`) to answer `requests` each at once."""
    with ExitStack() as stack:
        servers = [stack.enter_context(serve_model(model, blas_threads=threads)) for _ in range(2)]
        for server in servers:  # warm: the first request loads lazily built kernels
            _ask(server.base_url, server.request_model, 4)
        start = time.perf_counter()
        with ThreadPoolExecutor(2 * requests) as pool:
            jobs = [
                pool.submit(_ask, s.base_url, s.request_model, max_tokens)
                for s in servers
                for _ in range(requests)
            ]
            tokens = sum(job.result() for job in jobs)
        seconds = time.perf_counter() - start
    label = "default" if threads is None else str(threads)
    print(f"BLAS workers per server {label}: {seconds:.1f} s for {tokens} tokens")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder; default: embedded model")
    parser.add_argument("--requests", type=int, default=4, help="concurrent requests per server")
    parser.add_argument("--max-tokens", type=int, default=40)
    args = parser.parse_args()
    model = Path(args.model) if args.model else embedded_model_dir()
    print(f"CPU: {cpu_model()}, {cpu_count()} CPUs; BLAS: {choose_blas().name}")
    default = _round(model, None, args.requests, args.max_tokens)
    capped = _round(model, cores_each(2), args.requests, args.max_tokens)
    print(f"capped at {cores_each(2)} worker(s) each: {default / capped:.2f}x faster")


if __name__ == "__main__":
    main()
