"""The tokenizer rebuilt from the real SmolLM2 GGUF splits text the way its vocabulary implies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gguf import GGUFReader
from mlx_lm.tokenizer_utils import TokenizerWrapper, load

from punie.errors import ModelImportError
from punie.mlx.chat_template import TOOLS_CHAT_TEMPLATE
from punie.mlx.embedded import embedded_gguf_path
from punie.mlx.gguf_tokenizer import (
    GGUFTokenizerSpec,
    build_tokenizer,
    read_tokenizer_spec,
    write_tokenizer,
)

# Text, and the pieces the smollm pre-tokenizer (each digit alone, then GPT-2's byte-level regex)
# and SmolLM2's merges give; control tokens stay whole.
CASES = [
    ("Hello world 2024!", ["Hello", "Ġworld", "Ġ", "2", "0", "2", "4", "!"]),
    (
        "def add(a, b):\n    return a + b",
        ["def", "Ġadd", "(", "a", ",", "Ġb", "):", "ĊĠĠĠ", "Ġreturn", "Ġa", "Ġ+", "Ġb"],
    ),
    (
        "<|im_start|>user\nx = 3.14<|im_end|>\n",
        ["<|im_start|>", "user", "Ċ", "x", "Ġ=", "Ġ", "3", ".", "1", "4", "<|im_end|>", "Ċ"],
    ),
    (
        "  price: $1,234.50\t(tab)",
        ["Ġ", "Ġprice", ":", "Ġ$", "1", ",", "2", "3", "4", ".", "5", "0", "ĉ", "(", "tab", ")"],
    ),
]


@pytest.fixture(scope="module")
def spec() -> GGUFTokenizerSpec:
    path = embedded_gguf_path()
    return read_tokenizer_spec(GGUFReader(path), path)


@pytest.fixture(scope="module")
def wrapper(spec: GGUFTokenizerSpec, tmp_path_factory: pytest.TempPathFactory) -> TokenizerWrapper:
    folder = tmp_path_factory.mktemp("smollm2-tokenizer")
    write_tokenizer(spec, folder, chat_template=TOOLS_CHAT_TEMPLATE)
    return load(folder)


def test_the_gguf_states_what_the_issue_says(spec: GGUFTokenizerSpec) -> None:
    assert (spec.model, spec.pre) == ("gpt2", "smollm")
    assert spec.tokens[:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert spec.token_types[:3] == [3, 3, 3]
    assert (spec.bos_token_id, spec.eos_token_id) == (1, 2)


@pytest.mark.parametrize(("text", "pieces"), CASES, ids=[c[0][:12] for c in CASES])
def test_encodes_to_the_ids_the_vocabulary_implies(
    spec: GGUFTokenizerSpec, wrapper: TokenizerWrapper, text: str, pieces: list[str]
) -> None:
    expected = [spec.tokens.index(piece) for piece in pieces]
    encoding = build_tokenizer(spec).encode(text)
    assert encoding.tokens == pieces
    assert encoding.ids == expected
    # The folder mlx-lm loads gives the same ids (no BOS added: SmolLM2 adds none) and decodes back.
    assert wrapper.encode(text) == expected
    assert wrapper.decode(expected) == text


def test_control_tokens_are_special_and_end_of_turn_is_eos(wrapper: TokenizerWrapper) -> None:
    assert wrapper.encode("<|im_end|>") == [2]
    assert wrapper.eos_token_ids == {2}
    assert wrapper.decode([1, 4093, 2], skip_special_tokens=True) == "user"
    assert {"<|im_start|>", "<|im_end|>", "<|endoftext|>"} <= set(wrapper.all_special_tokens)


def test_unknown_pre_tokenizer_and_model_are_clear_errors(spec: GGUFTokenizerSpec) -> None:
    fields = {k: getattr(spec, k) for k in spec.__dataclass_fields__}
    with pytest.raises(ModelImportError, match=r"pre-tokenizer 'mystery' is not supported.*smollm"):
        build_tokenizer(GGUFTokenizerSpec(**{**fields, "pre": "mystery"}))
    with pytest.raises(ModelImportError, match=r"tokenizer model 'llama' is not supported"):
        build_tokenizer(GGUFTokenizerSpec(**{**fields, "model": "llama"}))


def test_written_config_names_bos_eos_and_template(spec: GGUFTokenizerSpec, tmp_path: Path) -> None:
    write_tokenizer(spec, tmp_path, chat_template=None)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert (config["bos_token"], config["eos_token"]) == ("<|im_start|>", "<|im_end|>")
    assert config["chat_template"] == spec.chat_template  # the GGUF's own, when none is given
    assert config["add_bos_token"] is False
