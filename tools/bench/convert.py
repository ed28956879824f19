"""Benchmark: convert a glaive-format corpus of >= 113,000 rows, against a plain baseline parser.

The corpus is built from the shapes of the real glaive rows (the ones with both a system prompt
and a chat), with a unique id and varied strings per row. Each run happens in a fresh process,
so its peak resident memory (ru_maxrss) is its own; two corpus sizes show whether memory grows
with the input. Usage: `uv run python tools/bench/convert.py [--rows 113000] [--keep DIR]`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

PROJECT_ROOT = Path(__file__).resolve().parent.parent
REAL_ROWS = PROJECT_ROOT / "datasets" / "public" / "glaive_function_calling_v2.jsonl"
_USER = re.compile(r"^USER: ", re.MULTILINE)


def build_corpus(path: Path, rows: int) -> None:
    """Write `rows` glaive-format rows, cycling through the real rows' shapes."""
    templates = []
    for line in REAL_ROWS.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if not isinstance(record, dict):
            continue
        # Copies that lost every newline are artefacts of quoting, not shapes of the data set.
        if record.get("fidelity") == "whitespace_collapsed":
            continue
        if isinstance(record, dict) and record.get("system") and record.get("chat"):
            templates.append((record["system"], record["chat"]))
    with path.open("w", encoding="utf-8") as out:
        for i in range(rows):
            system, chat = templates[i % len(templates)]
            # Vary strings so no two rows are equal: tag the first user turn, vary numbers.
            chat = _USER.sub(f"USER: [ticket {i}] ", chat, count=1).replace(
                "2022", str(1900 + i % 200)
            )
            out.write(json.dumps({"system": system, "chat": chat, "row_index": i}) + "\n")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_punie(corpus: str, limit: int, queue) -> None:
    from punie.data import convert_file
    from punie.logs import configure_logging

    configure_logging(level="WARNING")
    out = Path(tempfile.mkdtemp()) / "out.jsonl"
    started = time.perf_counter()
    report = convert_file("glaive", corpus, out, limit=limit)
    seconds = time.perf_counter() - started
    queue.put(("punie", limit, report.rows_read, report.converted, seconds, _peak_mb()))


def run_baseline(corpus: str, limit: int, queue) -> None:
    """The plain approach: split turns on '\\n\\n\\n', json.loads what follows <functioncall>."""
    started = time.perf_counter()
    read = converted = 0
    with open(corpus, encoding="utf-8") as handle:
        for line in handle:
            if read >= limit:
                break
            read += 1
            row = json.loads(line)
            ok = True
            for turn in row["chat"].split("\n\n\n"):
                if "<functioncall>" in turn:
                    body = turn.split("<functioncall>", 1)[1].replace("<|endoftext|>", "")
                    try:
                        json.loads(body)
                    except json.JSONDecodeError:
                        ok = False
            converted += ok
    seconds = time.perf_counter() - started
    queue.put(("baseline", limit, read, converted, seconds, _peak_mb()))


def measure(target, corpus: Path, limit: int) -> tuple:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(str(corpus), limit, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=113_000)
    parser.add_argument("--keep", type=Path, help="Write the corpus here and keep it.")
    args = parser.parse_args(argv)
    console = Console()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_convert_"))
    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "glaive_corpus.jsonl"
    started = time.perf_counter()
    build_corpus(corpus, args.rows)
    size_mb = corpus.stat().st_size / 2**20
    console.print(
        f"corpus: {args.rows} rows, {size_mb:.0f} MiB, built in "
        f"{time.perf_counter() - started:.1f}s ({corpus})"
    )
    table = Table(title="glaive conversion (each run in a fresh process)")
    for column in ("parser", "rows", "converted", "seconds", "rows/s", "peak RSS MiB"):
        table.add_column(column, justify="right")
    small = max(1, args.rows // 4)
    for target in (run_baseline, run_punie):
        for limit in (small, args.rows):
            name, _, read, converted, seconds, peak = measure(target, corpus, limit)
            table.add_row(
                name,
                str(read),
                f"{converted} ({100 * converted / read:.2f}%)",
                f"{seconds:.2f}",
                f"{read / seconds:,.0f}",
                f"{peak:.0f}",
            )
    console.print(table)
    if args.keep is None:
        corpus.unlink()


if __name__ == "__main__":
    sys.exit(main())
