"""The examples run as a user would run them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from scripted_server import ScriptedServer, text_reply, tool_reply

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_run_agent_example_answers_through_a_session(tmp_path: Path) -> None:
    replies = [tool_reply("grep", {"pattern": "class .*Item"}), text_reply("Tool inherits it.")]
    with ScriptedServer(replies) as server:
        done = subprocess.run(
            [sys.executable, str(EXAMPLES / "run_agent.py"), "--base-url", server.base_url,
             "--model", "qwen2.5-coder"],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("answered Tool inherits it.")
    assert "('grep', {'pattern': 'class .*Item'})" in last
    assert all("<|im_end|>" in body["stop"] for body in server.bodies)
