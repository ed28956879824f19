"""The training configuration: one dataclass whose keys are mlx-lm's `lora` config keys, loaded from
YAML, overridden by CLI flags, and checked before any model is loaded."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import structlog
import yaml
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass

from punie.errors import ConfigError, first_problem
from punie.mlx.train.recipes import Recipe

log = structlog.get_logger(__name__)

# mlx-lm keys that make no sense for `punie train` (it always trains, never uploads); accepted so an
# mlx-lm config file works as is, and ignored with a warning.
IGNORED_MLX_KEYS = frozenset(
    {"train", "test", "test_batches", "report_to", "project_name", "trust_remote_code", "config"}
)
SPLITS = ("train", "valid")


@dataclass(frozen=True, config=ConfigDict(extra="forbid", strict=False))
class TrainConfig:
    """What to train, on what, and how; field names match mlx-lm's lora config keys.

    `recipe`, `answer_weight` (the loss weight of each answer from a tool result in the training
    split, every other assistant token weighing 1; validation stays unweighted), `resume`,
    `fast_blas`, `cache_frozen_layers` (run the frozen bottom layers once before training, not
    every step) and `dequantize_base` (LoRA/DoRA on a quantized model on CPU: compute with float32
    copies of the frozen quantized weights where they fit in memory; the adapter is the same and
    applies to the quantized model) are Punie's own.
    `model: None` means the embedded model.
    """

    data: str
    model: str | None = None
    adapter_path: str = "adapters"
    recipe: Recipe = Recipe.punie
    answer_weight: float = Field(default=1.0, gt=0)
    fine_tune_type: Literal["lora", "dora", "full"] = "lora"
    optimizer: Literal["adam", "adamw", "muon", "sgd", "adafactor"] = "adam"
    optimizer_config: dict[str, dict[str, Any]] = Field(default_factory=dict)
    seed: int = 0
    num_layers: int = Field(default=16, ge=-1)
    batch_size: int = Field(default=4, ge=1)
    iters: int = Field(default=1000, ge=1)
    val_batches: int = Field(default=25, ge=-1)
    learning_rate: float = Field(default=1e-5, gt=0)
    steps_per_report: int = Field(default=10, ge=1)
    steps_per_eval: int = Field(default=200, ge=1)
    save_every: int = Field(default=100, ge=1)
    max_seq_length: int = Field(default=2048, ge=2)
    grad_checkpoint: bool = False
    grad_accumulation_steps: int = Field(default=1, ge=1)
    clear_cache_threshold: int = Field(default=0, ge=0)
    lr_schedule: dict[str, Any] | None = None
    lora_parameters: dict[str, Any] = Field(
        default_factory=lambda: {"rank": 8, "dropout": 0.0, "scale": 20.0}
    )
    resume_adapter_file: str | None = None
    resume: bool = True
    fast_blas: bool = True
    cache_frozen_layers: bool = True
    dequantize_base: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (what adapter_config.json and the worker receive)."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))


FIELDS = frozenset(f.name for f in dataclasses.fields(TrainConfig))
_ADAPTER = TypeAdapter(TrainConfig)


def make_config(values: Mapping[str, Any], *, source: str = "config") -> TrainConfig:
    """Validate ``values`` into a TrainConfig; a bad key or value raises ConfigError naming it."""
    values = dict(values)
    for key in list(values):
        if key in IGNORED_MLX_KEYS:
            log.warning("config_key_ignored", key=key, source=source)
            values.pop(key)
        elif key == "mask_prompt":
            raise ConfigError(
                f"{source}: key 'mask_prompt' is not used by punie train: the default "
                "`recipe: punie` already takes the loss on every assistant turn; remove the key"
            )
        elif key not in FIELDS:
            raise ConfigError(
                f"{source}: unknown key {key!r}; known keys: {', '.join(sorted(FIELDS))}"
            )
    if "data" not in values or values["data"] in (None, ""):
        raise ConfigError(
            f"{source}: key 'data' is missing; set it to the folder holding train.jsonl and "
            "valid.jsonl (what `punie data mix` writes)"
        )
    lora = values.get("lora_parameters")
    if isinstance(lora, Mapping):
        # A partial lora_parameters block keeps mlx-lm's defaults for the keys it leaves out.
        values["lora_parameters"] = {"rank": 8, "dropout": 0.0, "scale": 20.0, **lora}
    try:
        config = _ADAPTER.validate_python(values)
    except ValidationError as exc:
        key, message, got = first_problem(exc)
        raise ConfigError(f"{source}: key {key!r}: {message} (got {got!r})") from exc
    rank = config.lora_parameters.get("rank")
    if config.fine_tune_type != "full" and (not isinstance(rank, int) or rank < 1):
        raise ConfigError(f"{source}: key 'lora_parameters.rank' must be an integer >= 1")
    return config


def load_config(path: Path | None, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """Read a YAML config (keys as mlx-lm's), then apply ``overrides`` (CLI flags; None = unset)."""
    values: dict[str, Any] = {}
    source = str(path) if path is not None else "flags"
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"config {path} is not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config {path} must be a mapping of mlx-lm lora keys")
        values.update(loaded or {})
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key == "rank":
            values["lora_parameters"] = {**values.get("lora_parameters", {}), "rank": value}
        else:
            values[key] = value
    return make_config(values, source=source)


@dataclasses.dataclass(frozen=True)
class ResolvedRun:
    """A checked configuration: where the model, splits and outputs are."""

    config: TrainConfig
    model: str
    model_layers: int | None
    splits: dict[str, Path]
    adapter_dir: Path


def model_layers(model: str) -> int | None:
    """The transformer layer count of a local model folder (None for a hub id)."""
    config_path = Path(model) / "config.json"
    if not config_path.is_file():
        return None
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"model {model}: config.json is unreadable ({exc})") from exc
    config = config.get("text_config", config)
    layers = config.get("num_hidden_layers", config.get("n_layer"))
    return int(layers) if layers is not None else None


def resolve(config: TrainConfig) -> ResolvedRun:
    """Check what can be checked without loading the model: the splits, the model folder and its
    layer count. Raises ConfigError naming the key."""
    data = Path(config.data).expanduser()
    if not data.is_dir():
        raise ConfigError(
            f"key 'data': {data} is not a folder; point it at the folder holding "
            f"{' and '.join(s + '.jsonl' for s in SPLITS)}"
        )
    splits = {}
    for split in SPLITS:
        path = data / f"{split}.jsonl"
        if not path.is_file():
            raise ConfigError(
                f"key 'data': split {split!r} is missing ({path} does not exist); "
                "run `punie data mix` or add the file"
            )
        splits[split] = path
    if config.model is None:
        from punie.mlx.embedded import embedded_model_dir

        model = str(embedded_model_dir())
    else:
        model = config.model
        local = Path(model).expanduser()
        if local.exists():
            if not (local / "config.json").is_file():
                raise ConfigError(
                    f"key 'model': {local} has no config.json; point it at an mlx-lm model folder"
                )
            model = str(local)
    layers = model_layers(model)
    if layers is not None and config.num_layers > layers:
        raise ConfigError(
            f"key 'num_layers': {config.num_layers} is more layers than model {model} has "
            f"({layers}); use at most {layers}, or -1 for all"
        )
    if config.resume_adapter_file is not None and not Path(config.resume_adapter_file).is_file():
        raise ConfigError(f"key 'resume_adapter_file': {config.resume_adapter_file} does not exist")
    return ResolvedRun(config, model, layers, splits, Path(config.adapter_path).expanduser())


# Keys that change what is learned; iters, intervals and resume do not (a resumed run may extend
# iters and still continue).
_FINGERPRINT_EXCLUDED = frozenset(
    {
        "iters",
        "resume",
        "save_every",
        "steps_per_report",
        "steps_per_eval",
        "val_batches",
        "adapter_path",
        "fast_blas",
        "cache_frozen_layers",  # same loss and gradients either way
        "dequantize_base",  # the same function, up to float rounding
        "clear_cache_threshold",
        "data",
        "model",
    }
)


def fingerprint(run: ResolvedRun) -> dict[str, Any]:
    """What the adapter was trained from: the data files' hashes, the model and the config keys
    that change learning, with one digest over all of them."""
    files = {split: _sha256(path) for split, path in run.splits.items()}
    model_config = Path(run.model) / "config.json"
    learned = {k: v for k, v in run.config.to_dict().items() if k not in _FINGERPRINT_EXCLUDED}
    body = {
        "model": run.model,
        "model_config_sha256": _sha256(model_config) if model_config.is_file() else None,
        "data": files,
        "config": learned,
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return {"digest": digest, **body}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
