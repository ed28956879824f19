"""The training child process: `python -m punie.mlx.train.worker REQUEST.json`, started by `train()`
with the fast-BLAS environment; it writes the result or the PunieError to the response file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from punie.errors import PunieError
from punie.logs import configure_logging
from punie.mlx.blas import choose_blas
from punie.mlx.train.config import make_config, resolve


def main(argv: list[str] | None = None) -> int:
    """Run one training request; exit 0 on success, 2 on a PunieError (reported in the file)."""
    args = sys.argv[1:] if argv is None else argv
    request = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    response = Path(request["response"])
    configure_logging(level="WARNING")
    try:
        config = make_config(request["config"])
        from punie.mlx.train.trainer import run_training

        result = run_training(
            resolve(config),
            progress=bool(request.get("progress", True)),
            blas=choose_blas(enabled=config.fast_blas).name,
        )
    except PunieError as exc:
        body = {"error": {"type": type(exc).__name__, "message": str(exc)}}
        response.write_text(json.dumps(body), encoding="utf-8")
        return 2
    response.write_text(json.dumps({"result": result.to_dict()}), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
