"""Benchmark: the eval suite run sequentially and with concurrency against one mlx-lm server.

One server (the embedded model by default) serves both passes, so the ratio measures what
running tasks concurrently (mlx-lm batches concurrent requests) buys on this machine:

    uv run python tools/bench/eval.py --limit 8 --concurrency 4
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from punie.evaluation import load_suite
from punie.evaluation.evaluate import EvalOptions, EvalTarget, evaluate_target
from punie.evaluation.suite import shipped_suites
from punie.mlx.embedded import embedded_model_dir
from punie.mlx.server import serve_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=Path, nargs="*", default=None, help="task JSONL files")
    parser.add_argument("--model", default=None, help="model folder; default: embedded model")
    parser.add_argument("--limit", type=int, default=8, help="tasks from the suite (0: all)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_eval"))
    args = parser.parse_args()

    tasks = load_suite(args.tasks or shipped_suites())
    tasks = tasks[: args.limit] if args.limit else tasks
    model = Path(args.model) if args.model else embedded_model_dir()
    timings: dict[int, float] = {}
    with serve_model(model) as server:
        for concurrency in (1, args.concurrency):
            target = EvalTarget(f"c{concurrency}", model=str(model), base_url=server.base_url)
            options = EvalOptions(concurrency=concurrency, max_tokens=args.max_tokens)
            start = time.perf_counter()
            _, scores = evaluate_target(tasks, target, out_dir=args.out, options=options)
            timings[concurrency] = time.perf_counter() - start
            statuses = sorted({s.status.value for s in scores})
            print(
                f"concurrency {concurrency}: {len(scores)} tasks in {timings[concurrency]:.1f} s "
                f"= {len(scores) / timings[concurrency] * 60:.1f} tasks/minute "
                f"(statuses: {', '.join(statuses)}; "
                f"output tokens/task {sum(s.output_tokens for s in scores) / len(scores):.0f})"
            )
    ratio = timings[1] / timings[args.concurrency]
    print(
        f"speed-up with concurrency {args.concurrency}: {ratio:.2f}x "
        f"({len(tasks)} tasks, model {model.name}, server {server.blas.name} BLAS)"
    )


if __name__ == "__main__":
    main()
