"""Rebuild a Hugging Face `tokenizer.json` from the tokenizer a GGUF file describes in its metadata.

A GGUF holds a byte-level BPE tokenizer as lists (tokens, merges, token types) plus the name of
llama.cpp's pre-tokenizer; this module turns those into a `tokenizers.Tokenizer` that splits text
the same way, with control tokens as special added tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from gguf import GGUFReader
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors

from punie.errors import ModelImportError

log = structlog.get_logger(__name__)

# llama.cpp's token types (gguf.TokenType): 3 is CONTROL, 4 is USER_DEFINED.
_CONTROL = 3
_USER_DEFINED = 4

_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _split_then_bytes(*patterns: str) -> pre_tokenizers.PreTokenizer:
    steps: list[pre_tokenizers.PreTokenizer] = [
        pre_tokenizers.Split(Regex(p), behavior="isolated") for p in patterns
    ]
    steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False))
    return pre_tokenizers.Sequence(steps)


def _smollm() -> pre_tokenizers.PreTokenizer:
    # llama.cpp's "smollm": every digit on its own, then GPT-2's byte-level regex
    # (the same as SmolLM2's own tokenizer.json: Digits(individual) + ByteLevel).
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )


# The GGUF `tokenizer.ggml.pre` names Punie knows, mapped to the matching pre-tokenizer.
PRE_TOKENIZERS: dict[str, Any] = {
    "default": lambda: pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    "gpt-2": lambda: pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    "gpt2": lambda: pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    "smollm": _smollm,
    "qwen2": lambda: _split_then_bytes(_QWEN2_SPLIT),
    "deepseek-r1-qwen": lambda: _split_then_bytes(_QWEN2_SPLIT),
    "llama3": lambda: _split_then_bytes(_LLAMA3_SPLIT),
    "llama-v3": lambda: _split_then_bytes(_LLAMA3_SPLIT),
    "llama-bpe": lambda: _split_then_bytes(_LLAMA3_SPLIT),
}


@dataclass(frozen=True)
class GGUFTokenizerSpec:
    """The tokenizer metadata of one GGUF file, as plain Python values."""

    source: Path
    model: str
    pre: str
    tokens: list[str]
    token_types: list[int]
    merges: list[str]
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    unk_token_id: int | None = None
    pad_token_id: int | None = None
    add_bos_token: bool = False
    chat_template: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def token(self, token_id: int | None) -> str | None:
        """The token text for an id, or None."""
        if token_id is None or not 0 <= token_id < len(self.tokens):
            return None
        return self.tokens[token_id]


def _field(reader: GGUFReader, key: str, default: Any = None) -> Any:
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def read_tokenizer_spec(reader: GGUFReader, source: Path) -> GGUFTokenizerSpec:
    """Read the `tokenizer.*` metadata of an opened GGUF file."""
    model = _field(reader, "tokenizer.ggml.model")
    if model is None:
        raise ModelImportError(
            f"{source}: the GGUF file holds no tokenizer (no 'tokenizer.ggml.model' key); "
            "re-convert it with llama.cpp's convert_hf_to_gguf.py, which embeds the tokenizer."
        )
    tokens = list(_field(reader, "tokenizer.ggml.tokens", []))
    token_types = list(_field(reader, "tokenizer.ggml.token_type", [1] * len(tokens)))
    return GGUFTokenizerSpec(
        source=source,
        model=model,
        pre=_field(reader, "tokenizer.ggml.pre", "default"),
        tokens=tokens,
        token_types=[int(t) for t in token_types],
        merges=list(_field(reader, "tokenizer.ggml.merges", [])),
        bos_token_id=_field(reader, "tokenizer.ggml.bos_token_id"),
        eos_token_id=_field(reader, "tokenizer.ggml.eos_token_id"),
        unk_token_id=_field(reader, "tokenizer.ggml.unknown_token_id"),
        pad_token_id=_field(reader, "tokenizer.ggml.padding_token_id"),
        add_bos_token=bool(_field(reader, "tokenizer.ggml.add_bos_token", False)),
        chat_template=_field(reader, "tokenizer.chat_template"),
    )


def build_tokenizer(spec: GGUFTokenizerSpec) -> Tokenizer:
    """A byte-level BPE `Tokenizer` equivalent to llama.cpp's reading of the GGUF metadata."""
    if spec.model != "gpt2":
        raise ModelImportError(
            f"{spec.source}: tokenizer model {spec.model!r} is not supported; Punie imports "
            "byte-level BPE tokenizers ('gpt2', as in SmolLM2, Qwen2.5 and Llama 3 GGUFs)."
        )
    make_pre = PRE_TOKENIZERS.get(spec.pre)
    if make_pre is None:
        raise ModelImportError(
            f"{spec.source}: pre-tokenizer {spec.pre!r} is not supported; supported: "
            f"{', '.join(sorted(PRE_TOKENIZERS))}. Add its split regex to "
            "punie/mlx/gguf_tokenizer.py (llama.cpp's llama-vocab.cpp lists it)."
        )
    if not spec.merges:
        raise ModelImportError(
            f"{spec.source}: the BPE tokenizer has no merges ('tokenizer.ggml.merges'); "
            "re-convert the model with a current llama.cpp."
        )
    vocab = {tok: i for i, tok in enumerate(spec.tokens)}
    merges = [tuple(m.split(" ", 1)) for m in spec.merges]
    tokenizer = Tokenizer(
        models.BPE(vocab=vocab, merges=merges, fuse_unk=False, ignore_merges=False)
    )
    tokenizer.pre_tokenizer = make_pre()
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    special = [
        AddedToken(tok, special=True, normalized=False)
        for tok, kind in zip(spec.tokens, spec.token_types, strict=True)
        if kind == _CONTROL
    ]
    user = [
        AddedToken(tok, special=False, normalized=False)
        for tok, kind in zip(spec.tokens, spec.token_types, strict=True)
        if kind == _USER_DEFINED
    ]
    tokenizer.add_special_tokens(special)
    if user:
        tokenizer.add_tokens(user)
    log.debug("tokenizer_built", source=str(spec.source), vocab=len(vocab), special=len(special))
    return tokenizer


def write_tokenizer(spec: GGUFTokenizerSpec, out_dir: Path, *, chat_template: str | None) -> None:
    """Write `tokenizer.json` and `tokenizer_config.json` for the spec into out_dir."""
    tokenizer = build_tokenizer(spec)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    eos = spec.token(spec.eos_token_id)
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": spec.token(spec.bos_token_id),
        "eos_token": eos,
        "unk_token": spec.token(spec.unk_token_id),
        "pad_token": spec.token(spec.pad_token_id) or eos,
        "add_bos_token": spec.add_bos_token,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 1_000_000,
        "additional_special_tokens": [
            tok
            for tok, kind in zip(spec.tokens, spec.token_types, strict=True)
            if kind == _CONTROL and tok not in {spec.token(spec.bos_token_id), eos}
        ],
    }
    template = chat_template if chat_template is not None else spec.chat_template
    if template is not None:
        config["chat_template"] = template
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False))
