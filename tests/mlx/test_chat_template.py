"""The tools chat template renders Qwen2.5's tool format, and mlx-lm infers its JSON tool parser."""

from __future__ import annotations

import copy
import json

import pytest
from gguf import GGUFReader
from mlx_lm.tokenizer_utils import TokenizerWrapper, load
from mlx_lm.tool_parsers import json_tools

from punie.mlx.chat_template import TOOLS_CHAT_TEMPLATE
from punie.mlx.embedded import embedded_gguf_path
from punie.mlx.gguf_tokenizer import read_tokenizer_spec, write_tokenizer

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "grep",
            "description": "Search files.",
            "parameters": {
                "type": "object",
                "properties": {"pattern": {"type": "string"}},
                "required": ["pattern"],
            },
        },
    }
]
CONVERSATION = [
    {"role": "system", "content": "You are Punie."},
    {"role": "user", "content": "Where is Square defined?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "grep", "arguments": {"pattern": "class Square"}},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "pkg/shapes.py:6:class Square(Shape):"},
    {"role": "tool", "tool_call_id": "c2", "content": "README.md:3:Squares and shapes."},
    {"role": "assistant", "content": "In pkg/shapes.py, line 6."},
]
RENDERED = """<|im_start|>system
You are Punie.

# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{"type": "function", "function": {"name": "grep", "description": "Search files.", \
"parameters": {"type": "object", "properties": {"pattern": {"type": "string"}}, \
"required": ["pattern"]}}}
</tools>

For each function call, return a json object with function name and arguments within \
<tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
<|im_start|>user
Where is Square defined?<|im_end|>
<|im_start|>assistant
<tool_call>
{"name": "grep", "arguments": {"pattern": "class Square"}}
</tool_call><|im_end|>
<|im_start|>user
<tool_response>
pkg/shapes.py:6:class Square(Shape):
</tool_response>
<tool_response>
README.md:3:Squares and shapes.
</tool_response><|im_end|>
<|im_start|>assistant
In pkg/shapes.py, line 6.<|im_end|>
"""


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> TokenizerWrapper:
    path = embedded_gguf_path()
    folder = tmp_path_factory.mktemp("smollm2-tools-template")
    write_tokenizer(read_tokenizer_spec(GGUFReader(path), path), folder, chat_template=None)
    # Written with the GGUF's own template, then swapped, so the test shows the swap matters.
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    assert not load(folder).has_tool_calling
    config["chat_template"] = TOOLS_CHAT_TEMPLATE
    config_path.write_text(json.dumps(config))
    return load(folder)


def test_renders_tools_tool_calls_and_tool_results(tokenizer: TokenizerWrapper) -> None:
    text = tokenizer.apply_chat_template(CONVERSATION, tools=TOOLS, tokenize=False)
    assert text == RENDERED


def test_arguments_as_a_json_string_render_the_same(tokenizer: TokenizerWrapper) -> None:
    conversation = copy.deepcopy(CONVERSATION)
    call = conversation[2]["tool_calls"][0]["function"]
    call["arguments"] = json.dumps(call["arguments"])
    assert tokenizer.apply_chat_template(conversation, tools=TOOLS, tokenize=False) == RENDERED


def test_without_tools_a_default_system_turn_and_generation_prompt(
    tokenizer: TokenizerWrapper,
) -> None:
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_mlx_lm_infers_the_json_tool_parser(tokenizer: TokenizerWrapper) -> None:
    assert tokenizer.has_tool_calling
    assert tokenizer.tool_parser is json_tools.parse_tool_call
    assert (tokenizer.tool_call_start, tokenizer.tool_call_end) == ("<tool_call>", "</tool_call>")
    # What the model writes between the markers, as rendered above, parses to the call.
    body = RENDERED.split("<tool_call>\n")[2].split("\n</tool_call>")[0]
    assert tokenizer.tool_parser(body) == {"name": "grep", "arguments": {"pattern": "class Square"}}
