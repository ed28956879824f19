"""The mlx-lm server lifecycle against a real `mlx_lm server` on the embedded SmolLM2 model."""

from __future__ import annotations

import json
import os
import re
import selectors
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx
import pytest
from child_signals import default_sigint
from model_helpers import write_random_adapter

from punie.errors import ServerError
from punie.mlx.child import MB, MemoryPolicy
from punie.mlx.server import RunningServer, ServerMemory, serve_model
from punie.records.profile import resolve_served_profile

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="session")
def embedded_model() -> Path:
    from punie.mlx.embedded import embedded_model_dir

    return embedded_model_dir()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line holds `text` (a unique temporary path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline and (entry / "stat").read_text().split()[2] != "Z":
            found.append(int(entry.name))
    return found


def _remove_kept_log(message: str) -> None:
    """The log a failed server keeps and its error names: it must be there; then removed."""
    log_path = Path(re.search(r"log: (/\S+?\.log)", message).group(1))
    assert log_path.is_file(), message
    shutil.rmtree(log_path.parent)


def _chat(server: RunningServer, model: str | None = None, max_tokens: int = 16) -> dict:
    response = httpx.post(
        f"{server.base_url}/chat/completions",
        json={
            "model": model or server.request_model,
            "messages": QUESTION,
            "max_tokens": max_tokens,
            "temperature": 0.0,
        },
        timeout=120,
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.slow
def test_serves_a_chat_completion_then_the_group_is_gone(embedded_model: Path) -> None:
    with serve_model(embedded_model) as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        assert server.request_model == "default_model"
        assert server.model == str(embedded_model.resolve())
        reply = _chat(server)
        assert "Paris" in reply["choices"][0]["message"]["content"]
        assert reply["usage"]["completion_tokens"] > 0
        # The server lists the model by its resolved path, not by the name clients must send.
        listed = httpx.get(f"{server.base_url}/models", timeout=10).json()
        assert str(embedded_model.resolve()) in [m["id"] for m in listed["data"]]
        assert server.log_path.read_text()  # its output went to the log file
        pid = server.pid
        assert _group_alive(pid)
    assert not _group_alive(pid)
    assert not server.log_path.parent.exists()  # a clean stop leaves no log behind
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.base_url.removesuffix('/v1')}/health", timeout=2)


@pytest.mark.slow
def test_group_is_stopped_when_the_body_raises(embedded_model: Path) -> None:
    pid = None
    with pytest.raises(RuntimeError, match="boom"), serve_model(embedded_model) as server:
        pid = server.pid
        assert _group_alive(pid)
        raise RuntimeError("boom")
    assert pid is not None
    assert not _group_alive(pid)


def test_port_in_use_names_the_port(tmp_path: Path) -> None:
    with socket.socket() as occupant:
        occupant.bind(("127.0.0.1", 0))
        occupant.listen()
        port = occupant.getsockname()[1]
        expected = f"Port {port} .*already in use"
        with pytest.raises(ServerError, match=expected), serve_model(tmp_path, port=port):
            pass
    assert not _processes_mentioning(str(tmp_path))


def test_missing_model_folder_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ServerError, match="no-such-model does not exist"), serve_model(missing):
        pass


@pytest.mark.slow
def test_unloadable_model_fails_fast_with_the_server_log(tmp_path: Path) -> None:
    bad = tmp_path / "bad-model"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"model_type": "punie_no_such_arch"}))
    started = time.monotonic()
    with pytest.raises(ServerError) as caught, serve_model(bad, startup_timeout_s=90):
        pass
    message = str(caught.value)
    assert time.monotonic() - started < 60
    assert str(bad) in message
    assert "Last log lines:" in message
    assert "No safetensors found" in message  # the server's own error, from its log
    assert '"GET /health' not in message  # access-log noise is left out
    assert not _processes_mentioning(str(bad))
    _remove_kept_log(message)


@pytest.mark.slow
def test_adapter_applies_only_to_the_request_model(embedded_model: Path, tmp_path: Path) -> None:
    adapter = write_random_adapter(embedded_model, tmp_path / "adapter")
    with serve_model(embedded_model, adapter=adapter) as server:
        assert server.adapter == adapter.resolve()
        adapted = _chat(server)["choices"][0]["message"]["content"]
        # mlx-lm 0.32's trap: naming the model's path loads it again without the adapter.
        by_path = _chat(server, model=server.model)["choices"][0]["message"]["content"]
        again = _chat(server)["choices"][0]["message"]["content"]
    with serve_model(embedded_model) as base_server:
        base = _chat(base_server)["choices"][0]["message"]["content"]
    assert "Paris" in base
    assert by_path == base
    assert adapted != base
    assert again == adapted


@pytest.mark.slow
def test_adapter_that_does_not_fit_the_model_fails_with_the_log(
    embedded_model: Path, tmp_path: Path
) -> None:
    import mlx.core as mx

    adapter = tmp_path / "misfit"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        json.dumps(
            {
                "fine_tune_type": "lora",
                "num_layers": 2,
                "lora_parameters": {"rank": 8, "scale": 20.0, "dropout": 0.0},
            }
        )
    )
    name = "model.layers.29.self_attn.q_proj.lora_a"
    mx.save_safetensors(str(adapter / "adapters.safetensors"), {name: mx.zeros((7, 3))})
    with (
        pytest.raises(ServerError, match="does not match") as caught,
        serve_model(embedded_model, adapter=adapter),
    ):
        pass
    assert str(adapter) in str(caught.value)
    assert not _processes_mentioning(str(adapter))
    _remove_kept_log(str(caught.value))


def test_adapter_folder_without_config_is_refused(tmp_path: Path) -> None:
    with (
        pytest.raises(ServerError, match=r"no adapter_config\.json"),
        serve_model(tmp_path, adapter=tmp_path),
    ):
        pass


def _read_until(stream: IO[bytes], marker: str, timeout_s: float) -> str:
    """A child's output up to the line holding `marker`, read unbuffered with a deadline."""
    text = ""
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=deadline - time.monotonic()):
                break
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                break
            text += chunk.decode(errors="replace")
            if marker in text and text.endswith("\n"):
                return text
    raise AssertionError(f"no {marker!r} in the output:\n{text}")


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_punie_serve_stays_up_until_interrupted(
    stop_signal: signal.Signals, tmp_path: Path
) -> None:
    punie = Path(sys.executable).with_name("punie")
    # Its own session, so the test can signal it like a terminal would (the whole foreground
    # group), while the server lives in a session of its own.
    cli = subprocess.Popen(
        [str(punie), "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        bufsize=0,
        start_new_session=True,
        preexec_fn=default_sigint,
    )
    try:
        assert cli.stdout is not None
        shown = _read_until(cli.stdout, "run with:", timeout_s=180)
        fields = dict(line.split(":", 1) for line in shown.splitlines() if ":" in line)
        base_url = fields["base URL"].strip()
        server_pid = int(fields["server pid"].strip())
        assert fields["request model"].strip() == "default_model"
        # The printed `punie run` line works as it is: no --model, no --stop.
        run_line = shlex.split(fields["run with"].strip())
        assert run_line[:3] == ["punie", "run", "--base-url"]
        ran = subprocess.run(
            [
                str(punie),
                *run_line[1:-1],
                "--max-requests",
                "1",
                "--max-tokens",
                "8",
                "--trace",
                str(tmp_path / "traces.jsonl"),
                "Hello?",
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert "no stop sequences" not in ran.stdout + ran.stderr
        assert "status " in ran.stdout, ran.stdout + ran.stderr
        reply = httpx.post(
            f"{base_url}/chat/completions",
            json={"model": "default_model", "messages": QUESTION, "max_tokens": 8},
            timeout=120,
        )
        assert reply.status_code == 200, reply.text
        assert _group_alive(server_pid)
        os.killpg(cli.pid, stop_signal)
        assert cli.wait(timeout=60) == 0
        assert "Server stopped." in cli.stdout.read().decode()
        assert not _group_alive(server_pid)
    finally:
        if cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)
            cli.wait()


@pytest.mark.slow
def test_a_server_past_its_memory_bound_fails_with_one_clear_line(embedded_model: Path) -> None:
    tight = ServerMemory(child=MemoryPolicy(max_rss_bytes=150 * MB))
    with pytest.raises(ServerError) as caught, serve_model(embedded_model, memory=tight):
        pass
    first = str(caught.value).splitlines()[0]
    assert "the mlx-lm server (pid " in first
    assert "exceeded its memory bound of 157 MB and was killed; peak RSS " in first
    _remove_kept_log(first)


SERVING_PARENT = """
import sys, time
from punie.mlx.server import serve_model
with serve_model(sys.argv[1]) as server:
    print("SERVER", server.pid, flush=True)
    time.sleep(600)
"""


@pytest.mark.slow
def test_the_server_dies_when_its_parent_is_sigkilled(embedded_model: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", SERVING_PARENT, str(embedded_model)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    server_pid = None
    try:
        assert parent.stdout is not None
        line = next(line for line in parent.stdout if line.startswith("SERVER "))
        server_pid = int(line.split()[1])
        assert _group_alive(server_pid)
        parent.kill()
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _group_alive(server_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _group_alive(server_pid), "the server outlived its SIGKILLed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if server_pid is not None and _group_alive(server_pid):
            os.killpg(server_pid, signal.SIGKILL)


@pytest.mark.slow
def test_clients_resolve_the_served_models_profile_from_the_server(
    embedded_model: Path, tmp_path: Path
) -> None:
    adapter = write_random_adapter(embedded_model, tmp_path / "adapter")
    with serve_model(embedded_model, adapter=adapter) as server:
        for name in (None, "default_model"):
            profile = resolve_served_profile(server.base_url, name)
            assert profile.source == f"model folder {embedded_model.resolve()}"
            assert "<|im_end|>" in profile.stop_sequences
