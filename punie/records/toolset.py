"""What the model is offered: the system prompt and the code tools' schemas, as data.

The agent offers exactly these (a test compares them with the schemas pydantic-ai derives from
the tool functions), and the task generator and the harvester write them into every training
conversation, so the model learns the very tools it will be given.
"""

from __future__ import annotations

import copy
from typing import Any

SYSTEM_PROMPT = (
    "You are Punie, a coding assistant in a code repository. Use the tools to look at the code "
    "before you answer; paths are relative to the repository root. Answer general questions "
    "directly, without tools. When you have the answer, reply in plain text and stop."
)

CODE_TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "run_command",
            "description": "Run a shell command in the repository root; returns "
            "its exit code and output.",
            "parameters": {
                "additionalProperties": False,
                "properties": {"command": {"type": "string"}},
                "required": ["command"],
                "type": "object",
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "grep",
            "description": "Search files for a regular expression; returns "
            "`path:line: text` lines.",
            "parameters": {
                "additionalProperties": False,
                "properties": {
                    "pattern": {"description": "regular expression.", "type": "string"},
                    "path": {
                        "default": ".",
                        "description": "file or folder to search.",
                        "type": "string",
                    },
                    "glob": {
                        "default": "",
                        "description": "only files matching this glob, such as `*.py`.",
                        "type": "string",
                    },
                },
                "required": ["pattern"],
                "type": "object",
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a text file, or only its lines start_line to end_line.",
            "parameters": {
                "additionalProperties": False,
                "properties": {
                    "path": {"description": "the file.", "type": "string"},
                    "start_line": {
                        "default": 1,
                        "description": "first line to read (1-based).",
                        "type": "integer",
                    },
                    "end_line": {
                        "default": 0,
                        "description": "last line to read; 0 reads to the end.",
                        "type": "integer",
                    },
                },
                "required": ["path"],
                "type": "object",
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "write_file",
            "description": "Write a text file, replacing it if it exists.",
            "parameters": {
                "additionalProperties": False,
                "properties": {
                    "path": {"description": "the file.", "type": "string"},
                    "content": {"description": "the whole new content.", "type": "string"},
                },
                "required": ["path", "content"],
                "type": "object",
            },
        },
    },
]


def code_tool_schemas() -> list[dict[str, Any]]:
    """The code tools as OpenAI function schemas (a fresh copy each call)."""
    return copy.deepcopy(CODE_TOOLS)


def tool_parameters() -> dict[str, dict[str, Any]]:
    """Each code tool's parameter schema, by tool name."""
    return {s["function"]["name"]: s["function"]["parameters"] for s in code_tool_schemas()}
