"""Import a GGUF model (llama.cpp's format) into a folder that mlx-lm loads, trains and serves.

Supports the `llama` and `qwen2` architectures: the weights are dequantized with the `gguf`
package, llama.cpp's rotary permutation of llama's q/k weights is undone, and the tokenizer is
rebuilt from the GGUF metadata (see `gguf_tokenizer`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np
import structlog
from gguf import GGMLQuantizationType, GGUFReader
from gguf.gguf_reader import ReaderTensor
from gguf.quants import dequantize

from punie.errors import ModelImportError
from punie.mlx.gguf_tokenizer import read_tokenizer_spec, write_tokenizer
from punie.progress import progress as track
from punie.progress import stderr_console

log = structlog.get_logger(__name__)

SUPPORTED_ARCHITECTURES = ("llama", "qwen2")

# Quantizations the gguf package can dequantize (and so Punie can import).
SUPPORTED_QUANTIZATIONS = frozenset(
    {
        GGMLQuantizationType.F32,
        GGMLQuantizationType.F16,
        GGMLQuantizationType.BF16,
        GGMLQuantizationType.Q4_0,
        GGMLQuantizationType.Q4_1,
        GGMLQuantizationType.Q5_0,
        GGMLQuantizationType.Q5_1,
        GGMLQuantizationType.Q8_0,
        GGMLQuantizationType.Q2_K,
        GGMLQuantizationType.Q3_K,
        GGMLQuantizationType.Q4_K,
        GGMLQuantizationType.Q5_K,
        GGMLQuantizationType.Q6_K,
    }
)

_GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_BLOCK_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_BLOCK = re.compile(r"^blk\.(\d+)\.(.+)$")


@dataclass(frozen=True)
class GGUFModelConfig:
    """The model hyper-parameters a GGUF file states, under mlx-lm's (Hugging Face) names."""

    model_type: str
    hidden_size: int
    num_hidden_layers: int
    intermediate_size: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    vocab_size: int
    rope_theta: float
    max_position_embeddings: int
    tie_word_embeddings: bool
    attention_bias: bool
    rope_scaling: dict[str, Any] | None = None

    def to_hf(self, *, bos_token_id: int | None, eos_token_id: int | None) -> dict[str, Any]:
        """config.json content for mlx-lm (and transformers)."""
        arch = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}[self.model_type]
        config: dict[str, Any] = {
            "architectures": [arch],
            "model_type": self.model_type,
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_hidden_layers,
            "intermediate_size": self.intermediate_size,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "rms_norm_eps": self.rms_norm_eps,
            "vocab_size": self.vocab_size,
            "rope_theta": self.rope_theta,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "hidden_act": "silu",
            "torch_dtype": "float32",
            "bos_token_id": bos_token_id,
            "eos_token_id": eos_token_id,
        }
        if self.model_type == "llama":
            config["attention_bias"] = self.attention_bias
            config["mlp_bias"] = False
        if self.rope_scaling is not None:
            config["rope_scaling"] = self.rope_scaling
        return config


def _field(reader: GGUFReader, key: str, default: Any = None) -> Any:
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def _required(reader: GGUFReader, source: Path, key: str) -> Any:
    value = _field(reader, key)
    if value is None:
        raise ModelImportError(
            f"{source}: the GGUF metadata lacks {key!r}; the file is incomplete or was written "
            "by an old converter. Re-convert it with a current llama.cpp convert_hf_to_gguf.py."
        )
    return value


def _rope_scaling(reader: GGUFReader, arch: str) -> dict[str, Any] | None:
    kind = _field(reader, f"{arch}.rope.scaling.type")
    factor = _field(reader, f"{arch}.rope.scaling.factor")
    if kind in (None, "none") or factor in (None, 1.0):
        return None
    scaling: dict[str, Any] = {"type": kind, "rope_type": kind, "factor": float(factor)}
    original = _field(reader, f"{arch}.rope.scaling.original_context_length")
    if original is not None:
        scaling["original_max_position_embeddings"] = int(original)
    return scaling


def read_model_config(reader: GGUFReader, source: Path) -> GGUFModelConfig:
    """The hyper-parameters of a llama/qwen2 GGUF file; other architectures raise."""
    arch = _field(reader, "general.architecture")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ModelImportError(
            f"{source}: architecture {arch!r} is not supported; Punie imports "
            f"{' and '.join(SUPPORTED_ARCHITECTURES)} GGUF models. Use an MLX model folder "
            "(e.g. from mlx-community), or serve this GGUF with llama.cpp's OpenAI-compatible "
            "server."
        )
    names = {t.name for t in reader.tensors}
    embed = next((t for t in reader.tensors if t.name == "token_embd.weight"), None)
    if embed is None:
        raise ModelImportError(
            f"{source}: the GGUF file has no 'token_embd.weight' tensor; it is not a complete "
            f"{arch} model. Re-convert it with llama.cpp's convert_hf_to_gguf.py."
        )
    hidden = int(_required(reader, source, f"{arch}.embedding_length"))
    heads = int(_required(reader, source, f"{arch}.attention.head_count"))
    kv_heads = int(_field(reader, f"{arch}.attention.head_count_kv", heads))
    head_dim = int(_field(reader, f"{arch}.attention.key_length", hidden // heads))
    return GGUFModelConfig(
        model_type=arch,
        hidden_size=hidden,
        num_hidden_layers=int(_required(reader, source, f"{arch}.block_count")),
        intermediate_size=int(_required(reader, source, f"{arch}.feed_forward_length")),
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        rms_norm_eps=float(_required(reader, source, f"{arch}.attention.layer_norm_rms_epsilon")),
        # The embedding's row count, not len(tokens): GGUF shapes list the fastest axis first.
        vocab_size=int(embed.shape[1]),
        rope_theta=float(_field(reader, f"{arch}.rope.freq_base", 10000.0)),
        max_position_embeddings=int(_field(reader, f"{arch}.context_length", 4096)),
        tie_word_embeddings="output.weight" not in names,
        attention_bias="blk.0.attn_q.bias" in names,
        rope_scaling=_rope_scaling(reader, arch),
    )


def unpermute_rotary(weight: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's `permute` of llama q/k weights (or biases) for n_head heads.

    The converter does `w.reshape(n_head, 2, rows // n_head // 2, *rest).swapaxes(1, 2)`, so that
    the rotary pairs are adjacent (GPT-J style); mlx-lm, like Hugging Face, pairs dimension i with
    i + head_dim / 2.
    """
    rows = weight.shape[0]
    return (
        weight.reshape(n_head, rows // n_head // 2, 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def _hf_name(source: Path, gguf_name: str) -> str:
    if gguf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[gguf_name]
    match = _BLOCK.match(gguf_name)
    if match and match.group(2) in _BLOCK_NAMES:
        return f"model.layers.{match.group(1)}.{_BLOCK_NAMES[match.group(2)]}"
    raise ModelImportError(
        f"{source}: tensor {gguf_name!r} has no counterpart in mlx-lm's llama/qwen2 models; "
        "this GGUF uses a variant Punie does not import (only plain llama and qwen2 models are "
        "supported). Use an MLX model folder for it instead."
    )


def _check_tensors(reader: GGUFReader, source: Path) -> None:
    """Fail before writing anything on a tensor Punie cannot name or dequantize."""
    for tensor in reader.tensors:
        _hf_name(source, tensor.name)
        if tensor.tensor_type not in SUPPORTED_QUANTIZATIONS:
            supported = ", ".join(sorted(q.name for q in SUPPORTED_QUANTIZATIONS))
            raise ModelImportError(
                f"{source}: tensor {tensor.name!r} uses quantization {tensor.tensor_type.name}, "
                f"which Punie cannot dequantize; supported: {supported}. Use a GGUF with one of "
                "those (e.g. Q4_K_M or Q8_0)."
            )


def _dequantized(tensor: ReaderTensor) -> np.ndarray:
    values = dequantize(tensor.data, tensor.tensor_type)
    # GGUF shapes list the fastest axis first; numpy wants it last.
    shape = tuple(int(d) for d in reversed(tensor.shape.tolist()))
    return np.ascontiguousarray(values.reshape(shape), dtype=np.float32)


def _convert_weights(
    reader: GGUFReader, source: Path, config: GGUFModelConfig, *, progress: bool
) -> dict[str, mx.array]:
    weights: dict[str, mx.array] = {}
    # stderr: stdout stays for results (the CLI prints the folder)
    label = f"import {source.name}"
    with track(
        label, len(reader.tensors), unit="tensors", console=stderr_console(), enabled=progress
    ) as bar:
        for tensor in reader.tensors:
            name = _hf_name(source, tensor.name)
            values = _dequantized(tensor)
            if config.model_type == "llama" and ".self_attn.q_proj." in name:
                values = unpermute_rotary(values, config.num_attention_heads)
            elif config.model_type == "llama" and ".self_attn.k_proj." in name:
                values = unpermute_rotary(values, config.num_key_value_heads)
            weights[name] = mx.array(values)
            bar.advance()
    return weights


def _open(gguf_path: Path) -> GGUFReader:
    if not gguf_path.is_file():
        raise ModelImportError(
            f"{gguf_path}: no such file; give the path of a .gguf model file "
            "(llama.cpp's format), e.g. one you downloaded for llama.cpp or Ollama."
        )
    with gguf_path.open("rb") as fh:
        magic = fh.read(4)
    if magic != b"GGUF":
        raise ModelImportError(
            f"{gguf_path}: not a GGUF file (it does not start with the 'GGUF' magic bytes); "
            "give a .gguf model file, or point Punie at an MLX/Hugging Face model folder instead."
        )
    try:
        return GGUFReader(gguf_path)
    except (ValueError, OSError, IndexError) as exc:
        raise ModelImportError(
            f"{gguf_path}: the GGUF file cannot be read ({exc}); it may be truncated or written "
            "by a newer llama.cpp than the installed 'gguf' package; re-download it or upgrade "
            "'gguf'."
        ) from exc


def import_gguf(
    gguf_path: Path,
    out_dir: Path,
    *,
    chat_template: str | None = None,
    progress: bool = True,
) -> Path:
    """Convert a llama/qwen2 GGUF file into an mlx-lm model folder at out_dir and return it.

    Writes config.json, model.safetensors (float32), tokenizer.json, tokenizer_config.json and
    generation_config.json. `chat_template` replaces the GGUF's own template when given.
    """
    gguf_path = Path(gguf_path)
    out_dir = Path(out_dir)
    reader = _open(gguf_path)
    config = read_model_config(reader, gguf_path)
    spec = read_tokenizer_spec(reader, gguf_path)
    if chat_template is None and spec.chat_template is None:
        raise ModelImportError(
            f"{gguf_path}: the GGUF file has no chat template ('tokenizer.chat_template'); "
            "pass one (punie.mlx.chat_template.TOOLS_CHAT_TEMPLATE fits ChatML models)."
        )
    _check_tensors(reader, gguf_path)
    log.info("gguf_import_start", source=str(gguf_path), arch=config.model_type, out=str(out_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    # The tokenizer first: it fails fast on an unsupported tokenizer, before minutes of weights.
    write_tokenizer(spec, out_dir, chat_template=chat_template)
    weights = _convert_weights(reader, gguf_path, config, progress=progress)
    mx.save_safetensors(str(out_dir / "model.safetensors"), weights, metadata={"format": "mlx"})
    hf_config = config.to_hf(bos_token_id=spec.bos_token_id, eos_token_id=spec.eos_token_id)
    (out_dir / "config.json").write_text(json.dumps(hf_config, indent=2))
    generation = {"bos_token_id": spec.bos_token_id, "eos_token_id": spec.eos_token_id}
    (out_dir / "generation_config.json").write_text(json.dumps(generation, indent=2))
    log.info("gguf_import_done", source=str(gguf_path), tensors=len(weights), out=str(out_dir))
    return out_dir
