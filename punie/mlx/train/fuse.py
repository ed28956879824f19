"""`fuse()`: merge a trained adapter into its base model, as a folder mlx-lm and `punie serve` load.

mlx-lm's own `fuse` command does the merge (LoRA/DoRA layers folded into their linears, tokenizer
and chat template copied); Punie checks the inputs first and runs it in an MLX child
(`punie.mlx.child`).
"""

from __future__ import annotations

import json
from pathlib import Path

import structlog

from punie.errors import ModelImportError
from punie.mlx.child import failing_as_model_error, run_main

log = structlog.get_logger(__name__)


def fuse(
    adapter: Path,
    out: Path,
    *,
    model: str | None = None,
    dequantize: bool = False,
    fast_blas: bool = True,
) -> Path:
    """Write ``model`` with ``adapter`` merged into ``out``; returns ``out``.

    ``model`` defaults to the model recorded in the adapter's adapter_config.json.
    """
    adapter = Path(adapter)
    config_path = adapter / "adapter_config.json"
    if not config_path.is_file() or not (adapter / "adapters.safetensors").is_file():
        raise ModelImportError(
            f"adapter {adapter} lacks adapter_config.json or adapters.safetensors; "
            "pass the adapter_path folder a `punie train` run wrote"
        )
    if model is None:
        model = json.loads(config_path.read_text(encoding="utf-8")).get("model")
        if not model:
            raise ModelImportError(
                f"adapter {adapter}: adapter_config.json names no model; pass --model"
            )
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ModelImportError(f"output folder {out} is not empty; choose a new --out folder")
    args = ["--model", str(model), "--adapter-path", str(adapter), "--save-path", str(out)]
    if dequantize:
        args.append("--dequantize")
    log.info("fuse_start", model=model, adapter=str(adapter), out=str(out))
    with failing_as_model_error(f"fusing {adapter} into {model}"):
        run_main("mlx-lm fuse", "mlx_lm.fuse:main", args, fast_blas=fast_blas)
    if not (out / "config.json").is_file():
        raise ModelImportError(f"fusing {adapter} into {model} wrote no {out / 'config.json'}")
    log.info("fuse_done", out=str(out))
    return out
