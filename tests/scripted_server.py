"""A scripted OpenAI-compatible chat server for harness tests: real HTTP, scripted model turns.

It records every JSON body it receives, so tests can check what went over the wire; a `Forward`
reply makes it a recording proxy in front of a real server.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

Reply = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]


def text_reply(text: str) -> dict[str, Any]:
    """An assistant message with plain text content."""
    return {"role": "assistant", "content": text}


def tool_reply(name: str, arguments: dict[str, Any], call_id: str = "call_1") -> dict[str, Any]:
    """An assistant message with one structured tool call."""
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
        ],
    }


@dataclass
class RawReply:
    """A reply sent as is: a status code and a body (for 500s and garbage)."""

    status: int
    body: bytes
    content_type: str = "application/json"


@dataclass
class Forward:
    """Pass the request on to a real server and send back its answer as is."""

    upstream: str  # base URL, e.g. http://127.0.0.1:PORT/v1


@dataclass
class ScriptedServer:
    """Serves the scripted replies in order (the last one repeats); records request bodies."""

    replies: list[Reply | RawReply | Forward]
    delay_s: float = 0.0
    usage: Callable[[dict[str, Any]], dict[str, int]] | None = None
    """The `usage` to report for a scripted message (default: 10 prompt, 5 completion tokens)."""
    bodies: list[dict[str, Any]] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                server.bodies.append(body)
                index = min(len(server.bodies) - 1, len(server.replies) - 1)
                reply = server.replies[index]
                if server.delay_s:
                    time.sleep(server.delay_s)
                if isinstance(reply, Forward):
                    answer = httpx.post(
                        f"{reply.upstream}/chat/completions", json=body, timeout=600
                    )
                    server.answers.append(answer.json())
                    self._send(answer.status_code, answer.content)
                    return
                if isinstance(reply, RawReply):
                    self._send(reply.status, reply.body, reply.content_type)
                    return
                message = reply(body) if callable(reply) else reply
                payload = {
                    "id": f"chatcmpl-{len(server.bodies)}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "scripted"),
                    "choices": [
                        {
                            "index": 0,
                            "message": message,
                            "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                        }
                    ],
                    "usage": (
                        server.usage(message)
                        if server.usage is not None
                        else {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
                    ),
                }
                self._send(200, json.dumps(payload).encode())

            def _send(
                self, status: int, data: bytes, content_type: str = "application/json"
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
