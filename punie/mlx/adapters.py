"""Which trained adapter `punie run` serves by default: the newest one the loop produced."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import platformdirs
import structlog

from punie.records.jsonl import write_json

log = structlog.get_logger(__name__)


def _registry(data_dir: Path | None) -> Path:
    return (data_dir or platformdirs.user_data_path("punie")) / "latest_adapter.json"


def remember_adapter(adapter: Path, model: Path, *, data_dir: Path | None = None) -> None:
    """Record `adapter` (trained on `model`) as the one `punie run` uses from now on."""
    record = {
        "adapter": str(adapter.resolve()),
        "model": str(model.resolve()),
        "saved_at": datetime.now(UTC).isoformat(),
    }
    write_json(_registry(data_dir), record)


def latest_adapter(model: Path, *, data_dir: Path | None = None) -> Path | None:
    """The newest remembered adapter for `model`, if it still exists."""
    path = _registry(data_dir)
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    adapter = Path(record.get("adapter", ""))
    if (
        record.get("model") != str(model.resolve())
        or not (adapter / "adapter_config.json").is_file()
    ):
        return None
    log.info("default_adapter", adapter=str(adapter))
    return adapter
