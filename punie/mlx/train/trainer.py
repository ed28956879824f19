"""The training run itself, inside an MLX process: masked examples fed to mlx-lm's own trainer.

`mlx_lm.tuner.trainer.train` takes the loss and batch-iterator functions as arguments; Punie passes
a loss that reads a per-token mask (every assistant turn, in one pass) and an iterator that yields
that mask beside the tokens, saves resumable checkpoints and drives the progress bar.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import structlog
from mlx.utils import tree_flatten, tree_unflatten
from mlx_lm.cli_ui import make_console
from mlx_lm.tuner.callbacks import TrainingCallback
from mlx_lm.tuner.trainer import TrainingArgs, evaluate
from mlx_lm.tuner.trainer import train as mlx_train
from mlx_lm.tuner.utils import build_schedule, linear_to_lora_layers
from mlx_lm.utils import _download, load_model, load_tokenizer, save_config
from mlx_lm.utils import load_config as mlx_load_config

from punie.errors import ConfigError, ModelImportError
from punie.mlx.train.batches import BatchFeeder, MaskedDataset, batch_order, masked_loss
from punie.mlx.train.config import ResolvedRun, fingerprint
from punie.mlx.train.curves import CURVE_FILE, LOSS_FILE, LossLog, plot_curves, read_points
from punie.mlx.train.dequant import dequantize_base, quantized_modules
from punie.mlx.train.frozen_cache import (
    CachedLoss,
    build_cached_split,
    check_cached_loss,
    frozen_cut,
)
from punie.mlx.train.frozen_store import load_states, save_states, states_key, store_dir
from punie.mlx.train.masking import end_of_turn_ids
from punie.mlx.train.recipes import SplitExamples, load_split
from punie.mlx.train.result import TrainResult
from punie.progress import progress as track
from punie.progress import stderr_console
from punie.records.jsonl import write_json
from punie.records.profile import resolve_profile

log = structlog.get_logger(__name__)

ADAPTER_FILE = "adapters.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "train_state.json"
FINGERPRINT_FILE = "fingerprint.json"
RESULT_FILE = "train_result.json"


class _Reports(TrainingCallback):
    """mlx-lm's loss reports, shifted to absolute steps, to the JSONL log and the progress bar."""

    def __init__(self, offset: int, loss_log: LossLog, on_train: Callable[[float], None]):
        self.offset = offset
        self.loss_log = loss_log
        self.on_train = on_train
        self.last_train: float | None = None
        self.last_valid: float | None = None
        self.trained_tokens = 0

    def on_train_loss_report(self, train_info: dict) -> None:
        self.last_train = float(train_info["train_loss"])
        self.trained_tokens = int(train_info["trained_tokens"])
        self.loss_log.add(
            "train",
            self.offset + int(train_info["iteration"]),
            self.last_train,
            tokens_per_second=float(train_info["tokens_per_second"]),
            learning_rate=float(train_info["learning_rate"]),
        )
        self.on_train(self.last_train)

    def on_val_loss_report(self, val_info: dict) -> None:
        self.last_valid = float(val_info["val_loss"])
        self.loss_log.add("valid", self.offset + int(val_info["iteration"]), self.last_valid)


def _progress(label: str, total: int, unit: str, enabled: bool) -> Any:
    """A bar on a terminal, a plain line at least every 30 s in a log (stderr: stdout may be
    the child's JSON channel)."""
    return track(label, total, unit=unit, console=stderr_console(), enabled=enabled)


def _save_checkpoint(
    model: nn.Module, optimizer: optim.Optimizer, adapter_dir: Path, step: int, digest: str
) -> None:
    weights = dict(tree_flatten(model.trainable_parameters()))
    # Write under temporary names and rename, so an interrupted save leaves the last good one.
    for name, tensors in (
        (ADAPTER_FILE, weights),
        (OPTIMIZER_FILE, dict(tree_flatten(optimizer.state))),
    ):
        tmp = adapter_dir / f".{name}.tmp.safetensors"
        mx.save_safetensors(str(tmp), tensors)
        os.replace(tmp, adapter_dir / name)
    mx.save_safetensors(str(adapter_dir / f"{step:07d}_{ADAPTER_FILE}"), weights)
    write_json(adapter_dir / STATE_FILE, {"step": step, "fingerprint": digest})
    log.info("checkpoint_saved", step=step, adapter_dir=str(adapter_dir))


def _resume_step(adapter_dir: Path, digest: str, resume: bool) -> int:
    state_path = adapter_dir / STATE_FILE
    if not resume or not state_path.is_file() or not (adapter_dir / ADAPTER_FILE).is_file():
        return 0
    state = json.loads(state_path.read_text(encoding="utf-8"))
    if state.get("fingerprint") != digest:
        raise ConfigError(
            f"key 'adapter_path': {adapter_dir} holds a run trained from other data, model or "
            "settings (fingerprint differs); choose a new adapter_path, or pass --no-resume "
            "to start over in it"
        )
    return int(state["step"])


def _model_path(model: str) -> Path:
    try:
        return _download(model)
    except Exception as exc:  # huggingface_hub raises many kinds for a missing or offline id
        raise ModelImportError(
            f"key 'model': {model} is neither a local folder nor a Hugging Face id in your "
            f"cache ({type(exc).__name__}); point it at an mlx-lm model folder"
        ) from exc


def _load_tokenizer(model_path: Path) -> Any:
    try:
        eos = mlx_load_config(model_path).get("eos_token_id")
        return load_tokenizer(model_path, eos_token_ids=eos)
    except (OSError, ValueError) as exc:
        raise ModelImportError(
            f"key 'model': cannot load the tokenizer of {model_path} ({exc}); "
            "point it at an mlx-lm model folder"
        ) from exc


def _load_model(model_path: Path) -> nn.Module:
    try:
        model, _ = load_model(model_path)
    except (OSError, ValueError) as exc:
        raise ModelImportError(
            f"key 'model': mlx-lm cannot load {model_path} ({exc}); "
            "point it at an mlx-lm model folder"
        ) from exc
    return model


def _end_of_turn_markers(model_path: str) -> tuple[str, ...]:
    try:
        return resolve_profile(model_path).end_of_turn
    except ConfigError:
        return ()


def prepare_model(model: nn.Module, run: ResolvedRun) -> None:
    """Freeze the model and add trainable LoRA/DoRA layers (or unfreeze the last layers)."""
    config = run.config
    model.freeze()
    n_layers = len(model.layers)
    if config.num_layers > n_layers:
        raise ConfigError(
            f"key 'num_layers': {config.num_layers} is more layers than model {run.model} "
            f"has ({n_layers}); use at most {n_layers}, or -1 for all"
        )
    if config.fine_tune_type == "full":
        if quantized_modules(model):
            raise ConfigError(
                f"key 'fine_tune_type': model {run.model} is quantized, and full fine-tuning "
                "needs float weights; use lora or dora (QLoRA), or a float model"
            )
        for layer in model.layers[-max(config.num_layers, 0) :]:
            layer.unfreeze()
    else:
        linear_to_lora_layers(
            model,
            config.num_layers,
            dict(config.lora_parameters),
            use_dora=config.fine_tune_type == "dora",
        )


def _optimizer(run: ResolvedRun) -> optim.Optimizer:
    config = run.config
    lr = build_schedule(config.lr_schedule) if config.lr_schedule else config.learning_rate
    classes = {
        "adam": optim.Adam,
        "adamw": optim.AdamW,
        "muon": optim.Muon,
        "sgd": optim.SGD,
        "adafactor": optim.Adafactor,
    }
    return classes[config.optimizer](
        learning_rate=lr, **config.optimizer_config.get(config.optimizer, {})
    )


def _cached_or_plain(
    model: nn.Module,
    run: ResolvedRun,
    train_set: MaskedDataset,
    valid_set: MaskedDataset,
    *,
    progress: bool,
    skipped: list[float],
) -> tuple[Callable[..., tuple[mx.array, mx.array]], Any, Any]:
    """The loss and datasets a run trains with: the plain masked loss on tokens, or (with
    ``cache_frozen_layers`` and frozen bottom layers) the top layers on cached states, reused
    from the store when the same states were built before (their build seconds are appended to
    `skipped`)."""
    config = run.config
    cut = frozen_cut(model, config.num_layers) if config.cache_frozen_layers else 0
    if not cut:
        return masked_loss, train_set, valid_set
    started = time.perf_counter()
    cached = {}
    # mlx-lm's gradient checkpointing cannot pass the shared-prefix caches through
    share_prefix = not config.grad_checkpoint
    folder = store_dir()
    for name, dataset in (("train", train_set), ("valid", valid_set)):
        path = None
        if folder is not None:
            key = states_key(run.model, cut, config.max_seq_length, share_prefix, dataset.examples)
            path = folder / f"{key}.safetensors"
            stored = load_states(path, dataset.examples, share_prefix=share_prefix)
            if stored is not None:
                log.info("frozen_states_reused", split=name, path=str(path))
                cached[name] = stored[0]
                skipped.append(stored[1])
                continue
        built = time.perf_counter()
        label = f"cache {cut} frozen layers: {name}"
        with _progress(label, len(dataset), "examples", progress) as bar:
            cached[name] = build_cached_split(
                model,
                dataset.examples,
                cut,
                config.max_seq_length,
                share_prefix=share_prefix,
                on_example=bar.advance,
            )
        if path is not None:
            save_states(path, cached[name], time.perf_counter() - built)
    lengths = [len(e) for e in train_set.examples]
    first = batch_order(len(train_set), config.batch_size, lengths)[0]
    check_cached_loss(model, cached["train"], cut, masked_loss, first, config.max_seq_length)
    log.info(
        "frozen_cache_ready",
        layers=cut,
        seconds=round(time.perf_counter() - started, 2),
        megabytes=round(sum(c.nbytes for c in cached.values()) / 2**20, 1),
    )
    return CachedLoss(cut), cached["train"], cached["valid"]


def load_splits(run: ResolvedRun, tokenizer: Any, *, progress: bool) -> dict[str, SplitExamples]:
    """Render and mask every split; a bad row raises DataError naming file:line."""
    eot_ids = end_of_turn_ids(tokenizer, _end_of_turn_markers(run.model))
    splits = {}
    for name, path in run.splits.items():
        rows = sum(1 for line in path.open(encoding="utf-8") if line.strip())
        with _progress(f"render {name}", rows, "rows", progress) as bar:
            splits[name] = load_split(
                path,
                tokenizer,
                run.config.recipe,
                eot_ids,
                max_seq_length=run.config.max_seq_length,
                on_row=bar.advance,
                answer_weight=run.config.answer_weight if name == "train" else 1.0,
            )
    return splits


def run_training(run: ResolvedRun, *, progress: bool = True, blas: str = "") -> TrainResult:
    """Train in this process (MLX already uses the BLAS named by ``blas``); see
    `punie.mlx.train.train`, which picks the process."""
    config = run.config
    started = time.perf_counter()
    mx.random.seed(config.seed)
    np.random.seed(config.seed)
    make_console().quiet = True  # mlx-lm's own progress UI; Punie draws its own bar
    adapter_dir = run.adapter_dir
    adapter_dir.mkdir(parents=True, exist_ok=True)
    prints = fingerprint(run)
    digest = prints["digest"]
    start_step = _resume_step(adapter_dir, digest, config.resume)

    # The tokenizer alone renders every row, so a bad row fails before the model loads.
    model_path = _model_path(run.model)
    splits = load_splits(run, _load_tokenizer(model_path), progress=progress)
    model = _load_model(model_path)
    train_set = MaskedDataset(splits["train"].examples)
    valid_set = MaskedDataset(splits["valid"].examples)
    for name, dataset in (("train", train_set), ("valid", valid_set)):
        if len(dataset) < config.batch_size:
            raise ConfigError(
                f"key 'batch_size': {config.batch_size} is more than the {len(dataset)} usable "
                f"examples of split {name!r}; lower batch_size or add data"
            )
    dequantized = (
        dequantize_base(model, fine_tune_type=config.fine_tune_type)
        if config.dequantize_base
        else None
    )
    prepare_model(model, run)
    optimizer = _optimizer(run)
    loss_log = LossLog(adapter_dir / LOSS_FILE)
    if start_step:
        model.load_weights(str(adapter_dir / ADAPTER_FILE), strict=False)
        if (adapter_dir / OPTIMIZER_FILE).is_file():
            optimizer.state = tree_unflatten(
                list(mx.load(str(adapter_dir / OPTIMIZER_FILE)).items())
            )
        loss_log.truncate_after(start_step)
        log.info("train_resume", step=start_step, adapter_dir=str(adapter_dir))
    else:
        loss_log.path.unlink(missing_ok=True)
        if config.resume_adapter_file is not None:
            model.load_weights(config.resume_adapter_file, strict=False)
    skipped: list[float] = []
    loss, train_data, valid_data = _cached_or_plain(
        model, run, train_set, valid_set, progress=progress, skipped=skipped
    )
    save_config(
        {**config.to_dict(), "model": run.model, "adapter_path": str(adapter_dir)},
        adapter_dir / "adapter_config.json",
    )
    write_json(adapter_dir / FINGERPRINT_FILE, prints)

    remaining = config.iters - start_step
    reports: _Reports
    with _progress(f"train {config.recipe.value}", config.iters, "steps", progress) as bar:
        bar.update(done=start_step)
        tic = time.perf_counter()
        shown = {"loss": "-", "tps": "-"}

        def show(**values: str) -> None:
            shown.update(values)
            bar.update(note=f"loss {shown['loss']} · {shown['tps']} tok/s")

        def step_done(step: int, processed: int) -> None:
            elapsed = time.perf_counter() - tic
            bar.update(done=step)
            show(tps=f"{processed / max(elapsed, 1e-9):,.0f}")
            if step % config.save_every == 0 and step < config.iters:
                _save_checkpoint(model, optimizer, adapter_dir, step, digest)

        feeder = BatchFeeder(seed=config.seed, start_step=start_step, on_step_done=step_done)
        reports = _Reports(start_step, loss_log, lambda loss: show(loss=f"{loss:.3f}"))
        if remaining > 0:
            args = TrainingArgs(
                batch_size=config.batch_size,
                iters=remaining,
                val_batches=config.val_batches,
                steps_per_report=config.steps_per_report,
                steps_per_eval=config.steps_per_eval,
                steps_per_save=remaining + 1,  # checkpoints are saved by the feeder, above
                max_seq_length=config.max_seq_length,
                adapter_file=str(adapter_dir / ADAPTER_FILE),
                grad_checkpoint=config.grad_checkpoint,
                grad_accumulation_steps=config.grad_accumulation_steps,
                clear_cache_threshold=config.clear_cache_threshold,
            )
            mlx_train(
                model=model,
                optimizer=optimizer,
                train_dataset=train_data,
                val_dataset=valid_data,
                args=args,
                loss=loss,
                iterate_batches=feeder,
                training_callback=reports,
            )
            feeder.finish(config.iters)
            _save_checkpoint(model, optimizer, adapter_dir, config.iters, digest)
        # mlx-lm validates before the last step; measure the adapter as saved.
        valid_loss = evaluate(
            model=model,
            dataset=valid_data,
            batch_size=config.batch_size,
            num_batches=config.val_batches,
            max_seq_length=config.max_seq_length,
            loss=loss,
            iterate_batches=feeder,
        )
        loss_log.add("valid", config.iters, valid_loss)

    points = read_points(loss_log.path)
    train_points = [p for p in points if p.split == "train"]
    curve = plot_curves(
        loss_log.path,
        adapter_dir / CURVE_FILE,
        title=f"{config.recipe.value}: {Path(run.model).name}",
    )
    result = TrainResult(
        adapter_dir=adapter_dir,
        recipe=config.recipe.value,
        steps=config.iters,
        resumed_from=start_step,
        final_train_loss=train_points[-1].loss if train_points else None,
        final_valid_loss=valid_loss,
        trained_tokens=reports.trained_tokens,
        processed_tokens=feeder.processed_tokens,
        seconds=time.perf_counter() - started,
        frozen_cache_skipped_seconds=sum(skipped),
        loss_jsonl=loss_log.path,
        curve_png=curve,
        blas=blas,
        fingerprint=digest,
        dequantized_modules=dequantized.modules if dequantized else 0,
    )
    write_json(adapter_dir / RESULT_FILE, result.to_dict())
    log.info("train_done", **{k: v for k, v in result.to_dict().items() if k != "fingerprint"})
    return result
