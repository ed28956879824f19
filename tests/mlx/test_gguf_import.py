"""GGUF import: small random llama/qwen2 models written the way llama.cpp writes them, imported
back, must give mlx-lm the same logits and the same tokenizer; bad files give one clear error."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import gguf
import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten
from mlx_lm import load
from mlx_lm.models import llama, qwen2
from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

from punie.errors import ModelImportError
from punie.mlx.chat_template import TOOLS_CHAT_TEMPLATE
from punie.mlx.gguf_import import import_gguf

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "The capital of France is Paris. The year is 2024!",
    "class Square(Shape):\n    def area(self) -> float:\n        return self.side ** 2\n",
    "import os\nprint(os.getcwd())  # where are we?\n",
    "Hello world, hello tools: grep, read_file, list_dir 123 456 789.",
] * 20
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SAMPLES = [
    "def add(a, b):\n    return a + b",
    "<|im_start|>user\nWhat is 12 + 30?<|im_end|>\n",
    "Paris  is   the capital, 2024 éè!",
]


def train_tokenizer(pre: str) -> Tokenizer:
    """A real byte-level BPE tokenizer trained on a tiny corpus, with ChatML control tokens."""
    tok = Tokenizer(models.BPE())
    if pre == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(False)]
        )
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    trainer = trainers.BpeTrainer(
        vocab_size=330,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def llama_cpp_permute(weights: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    """convert_hf_to_gguf.py's LlamaModel.permute, verbatim."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


@dataclass
class Original:
    model: llama.Model | qwen2.Model
    tokenizer: Tokenizer
    gguf_path: Path


def make_original(tmp_path: Path, arch: str, *, qtype: gguf.GGMLQuantizationType) -> Original:
    """A random model in mlx-lm, and the GGUF llama.cpp's converter would write for it."""
    mx.random.seed(7)
    pre = "smollm" if arch == "llama" else "qwen2"
    tokenizer = train_tokenizer(pre)
    vocab = tokenizer.get_vocab()
    n_vocab = len(vocab)
    common = dict(
        hidden_size=64,
        num_hidden_layers=2,
        intermediate_size=96,
        num_attention_heads=4,
        num_key_value_heads=2,
        rms_norm_eps=1e-5,
        vocab_size=n_vocab,
        rope_theta=10000.0,
        max_position_embeddings=512,
    )
    if arch == "llama":
        model = llama.Model(
            llama.ModelArgs(model_type="llama", tie_word_embeddings=False, **common)
        )
    else:
        model = qwen2.Model(qwen2.ModelArgs(model_type="qwen2", tie_word_embeddings=True, **common))
    # Random values everywhere (norms near 1), so a swapped or mis-shaped tensor shows in logits.
    params = {}
    for name, value in tree_flatten(model.parameters()):
        noise = mx.random.normal(value.shape) * 0.3
        params[name] = 1.0 + noise if "norm" in name else noise
    model.load_weights(list(params.items()))
    mx.eval(model.parameters())

    path = tmp_path / f"tiny-{arch}-{qtype.name}.gguf"
    writer = gguf.GGUFWriter(path, arch)
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(f"tiny {arch}")
    writer.add_block_count(common["num_hidden_layers"])
    writer.add_context_length(common["max_position_embeddings"])
    writer.add_embedding_length(common["hidden_size"])
    writer.add_feed_forward_length(common["intermediate_size"])
    writer.add_head_count(common["num_attention_heads"])
    writer.add_head_count_kv(common["num_key_value_heads"])
    writer.add_rope_freq_base(common["rope_theta"])
    writer.add_layer_norm_rms_eps(common["rms_norm_eps"])
    writer.add_file_type(
        gguf.LlamaFileType.ALL_F32
        if qtype == gguf.GGMLQuantizationType.F32
        else gguf.LlamaFileType.MOSTLY_Q8_0
    )
    if arch == "llama":
        writer.add_vocab_size(n_vocab)
        writer.add_rope_dimension_count(common["hidden_size"] // common["num_attention_heads"])
    tokens = [tok for tok, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in merges]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(
        [gguf.TokenType.CONTROL if t in SPECIALS else gguf.TokenType.NORMAL for t in tokens]
    )
    writer.add_token_merges(merges)
    writer.add_bos_token_id(vocab["<|im_start|>"])
    writer.add_eos_token_id(vocab["<|im_end|>"])
    writer.add_chat_template(TOOLS_CHAT_TEMPLATE)

    names = gguf.get_tensor_name_map(
        gguf.MODEL_ARCH.LLAMA if arch == "llama" else gguf.MODEL_ARCH.QWEN2,
        common["num_hidden_layers"],
    )
    for name, value in list(params.items()):
        data = np.array(value, dtype=np.float32)
        if arch == "llama" and name.endswith(("q_proj.weight", "q_proj.bias")):
            data = llama_cpp_permute(data, common["num_attention_heads"], None)
        if arch == "llama" and name.endswith(("k_proj.weight", "k_proj.bias")):
            data = llama_cpp_permute(
                data, common["num_attention_heads"], common["num_key_value_heads"]
            )
        gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        assert gguf_name is not None, name
        if data.ndim == 2 and qtype != gguf.GGMLQuantizationType.F32:
            packed = gguf.quants.quantize(data, qtype)
            writer.add_tensor(gguf_name, packed, raw_dtype=qtype)
            # The reference holds what the file holds: the same values after the quantization
            # round trip (blocks run along rows, so this commutes with llama.cpp's row permutation).
            original_packed = gguf.quants.quantize(np.array(value, dtype=np.float32), qtype)
            params[name] = mx.array(gguf.quants.dequantize(original_packed, qtype))
        else:
            writer.add_tensor(gguf_name, data)
    model.load_weights(list(params.items()))
    mx.eval(model.parameters())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Original(model=model, tokenizer=tokenizer, gguf_path=path)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize(
    "qtype",
    [gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.Q8_0],
    ids=["F32", "Q8_0"],
)
def test_round_trip_gives_the_same_logits_and_tokens(
    tmp_path: Path, arch: str, qtype: gguf.GGMLQuantizationType
) -> None:
    original = make_original(tmp_path, arch, qtype=qtype)
    out = import_gguf(original.gguf_path, tmp_path / "imported", progress=False)

    model, tokenizer = load(str(out))
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == arch
    assert config["tie_word_embeddings"] is (arch == "qwen2")

    for text in SAMPLES:
        assert tokenizer.encode(text) == original.tokenizer.encode(text).ids, text
    ids = mx.array([original.tokenizer.encode(SAMPLES[0] + SAMPLES[2]).ids])
    expected = original.model(ids)
    actual = model(ids)
    scale = float(mx.abs(expected).max())
    error = float(mx.abs(actual - expected).max())
    assert scale > 1.0  # the logits are far from zero, so the comparison means something
    assert error <= 1e-4 * scale, (error, scale)
    assert (mx.argmax(actual, axis=-1) == mx.argmax(expected, axis=-1)).all().item()


def test_imported_folder_has_the_files_mlx_lm_needs(tmp_path: Path) -> None:
    original = make_original(tmp_path, "llama", qtype=gguf.GGMLQuantizationType.F32)
    out = import_gguf(original.gguf_path, tmp_path / "imported", progress=False)
    names = {p.name for p in out.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    } <= names
    tokenizer_config = json.loads((out / "tokenizer_config.json").read_text())
    assert tokenizer_config["eos_token"] == "<|im_end|>"
    assert tokenizer_config["bos_token"] == "<|im_start|>"
    assert tokenizer_config["chat_template"] == TOOLS_CHAT_TEMPLATE
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["eos_token_id"] == original.tokenizer.token_to_id("<|im_end|>")


def test_chat_template_argument_replaces_the_gguf_one(tmp_path: Path) -> None:
    original = make_original(tmp_path, "qwen2", qtype=gguf.GGMLQuantizationType.F32)
    template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    out = import_gguf(original.gguf_path, tmp_path / "out", chat_template=template, progress=False)
    assert json.loads((out / "tokenizer_config.json").read_text())["chat_template"] == template


def _write_gguf(path: Path, arch: str, tensors: dict[str, tuple[np.ndarray, object]]) -> Path:
    writer = gguf.GGUFWriter(path, arch)
    writer.add_block_count(1)
    writer.add_embedding_length(8)
    for name, (data, raw_dtype) in tensors.items():
        writer.add_tensor(name, data, raw_dtype=raw_dtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _one_line_error(gguf_path: Path, tmp_path: Path) -> str:
    with pytest.raises(ModelImportError) as info:
        import_gguf(gguf_path, tmp_path / "out", progress=False)
    message = str(info.value)
    assert "\n" not in message
    assert str(gguf_path) in message
    return message


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    message = _one_line_error(tmp_path / "absent.gguf", tmp_path)
    assert "no such file" in message


def test_non_gguf_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_text('{"not": "a gguf"}\n')
    message = _one_line_error(path, tmp_path)
    assert "not a GGUF file" in message


def test_unsupported_architecture_is_a_clear_error(tmp_path: Path) -> None:
    path = _write_gguf(
        tmp_path / "mamba.gguf",
        "mamba",
        {"token_embd.weight": (np.zeros((16, 8), dtype=np.float32), None)},
    )
    message = _one_line_error(path, tmp_path)
    assert "architecture 'mamba' is not supported" in message
    assert "llama and qwen2" in message
    assert not (tmp_path / "out").exists()


def test_unsupported_quantization_is_a_clear_error(tmp_path: Path) -> None:
    original = make_original(tmp_path, "llama", qtype=gguf.GGMLQuantizationType.F32)
    reader = gguf.GGUFReader(original.gguf_path)
    path = tmp_path / "iq2.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), value_type, sub_type=sub_type)
    iq2 = gguf.GGMLQuantizationType.IQ2_XXS
    for tensor in reader.tensors:
        if tensor.name == "blk.0.ffn_up.weight":
            shape = (96, 256)  # IQ2_XXS blocks hold 256 values
            byte_shape = gguf.quant_shape_to_byte_shape(shape, iq2)
            writer.add_tensor(tensor.name, np.zeros(byte_shape, dtype=np.uint8), raw_dtype=iq2)
        else:
            writer.add_tensor(tensor.name, np.array(tensor.data))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    message = _one_line_error(path, tmp_path)
    assert "IQ2_XXS" in message
    assert "Q8_0" in message
    assert not (tmp_path / "out").exists()  # refused before writing anything


def test_cli_imports_and_reports_bad_input(tmp_path: Path) -> None:
    punie = Path(sys.executable).parent / "punie"
    original = make_original(tmp_path, "qwen2", qtype=gguf.GGMLQuantizationType.F32)
    done = subprocess.run(
        [punie, "model", "import-gguf", str(original.gguf_path), "--out", str(tmp_path / "m")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").is_file()

    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"PK\x03\x04 a zip, not a model")
    failed = subprocess.run(
        [punie, "model", "import-gguf", str(bad), "--out", str(tmp_path / "n")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failed.returncode == 2
    assert "not a GGUF file" in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1
