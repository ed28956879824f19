"""Model variants for experiments: the same weights served with another end-of-sequence token.

`eos_variant` builds a folder beside a model folder whose `tokenizer_config.json`,
`generation_config.json` and `config.json` name another token (by default `<|endoftext|>`) as
the end of sequence; every other file (the weights, `tokenizer.json`) is a symlink to the
original, never a copy. This is the configuration of the earlier stack: a chat model whose
end-of-sequence is not its end-of-turn marker (as base-model tokenizer configs have it), so
mlx-lm does not stop at `<|im_end|>` by itself and, without stop sequences on the wire, a reply
runs past the end of its turn into invented turns.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import structlog

from punie.errors import ConfigError

log = structlog.get_logger(__name__)

DEFAULT_VARIANT_EOS = "<|endoftext|>"
_REWRITTEN = ("config.json", "generation_config.json", "tokenizer_config.json")
# Bump when the variant's layout changes, so stale variant folders are rebuilt.
_VARIANT_FORMAT = "1"


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ConfigError(f"{path} holds no JSON object")
    return data


def token_id(model_dir: Path, token: str) -> int:
    """The id of `token` among the model's added tokens (`tokenizer.json`)."""
    tokenizer = _read(Path(model_dir) / "tokenizer.json")
    for entry in tokenizer.get("added_tokens") or []:
        if isinstance(entry, dict) and entry.get("content") == token:
            return int(entry["id"])
    vocab = (tokenizer.get("model") or {}).get("vocab") or {}
    if isinstance(vocab, dict) and token in vocab:
        return int(vocab[token])
    raise ConfigError(
        f"token {token!r} is not in the tokenizer of {model_dir}: pick one of its special tokens"
    )


def variant_name(model_dir: Path, eos_token: str) -> str:
    """The variant folder's name: the model's, with the eos token as a slug."""
    slug = re.sub(r"[^a-z0-9]+", "", eos_token.lower()) or "token"
    return f"{Path(model_dir).name}-eos-{slug}"


def eos_variant(model_dir: Path, eos_token: str = DEFAULT_VARIANT_EOS) -> Path:
    """The folder of `model_dir` served with `eos_token` as its only end-of-sequence token.

    Built once beside `model_dir` (atomically: a staging folder renamed into place) and reused
    while its stamp matches; the weights and tokenizer are symlinks to the original files.
    """
    source = Path(model_dir).resolve()
    if not (source / "config.json").is_file():
        raise ConfigError(f"{source} is no model folder (no config.json)")
    eos_id = token_id(source, eos_token)
    target = source.parent / variant_name(source, eos_token)
    stamp = {"format": _VARIANT_FORMAT, "source": str(source), "eos_token": eos_token,
             "eos_token_id": eos_id}  # fmt: skip
    stamp_path = target / "punie_variant.json"
    if stamp_path.is_file() and _read(stamp_path) == stamp:
        return target
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=source.parent))
    staging.chmod(0o755)
    try:
        for entry in sorted(source.iterdir()):
            if entry.name not in _REWRITTEN and not entry.name.startswith("."):
                os.symlink(entry, staging / entry.name)
        config = _read(source / "config.json")
        config["eos_token_id"] = eos_id
        generation = _read(source / "generation_config.json")
        generation["eos_token_id"] = eos_id
        tokenizer_config = _read(source / "tokenizer_config.json")
        tokenizer_config["eos_token"] = eos_token
        for name, data in (("config.json", config), ("generation_config.json", generation),
                           ("tokenizer_config.json", tokenizer_config)):  # fmt: skip
            (staging / name).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        (staging / "punie_variant.json").write_text(json.dumps(stamp) + "\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        try:
            os.rename(staging, target)
        except OSError:
            # Another process finished first; its folder is the same.
            if not (stamp_path.is_file() and _read(stamp_path) == stamp):
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    log.info("eos_variant_ready", target=str(target), eos_token=eos_token, eos_token_id=eos_id)
    return target
