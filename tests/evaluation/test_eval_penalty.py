"""A frequency penalty is part of what a label ran: on every request, in the report, and in the
demo's stage inputs (so a changed penalty re-runs the eval)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from scripted_server import ScriptedServer, text_reply

from punie.evaluation import EvalTarget, evaluate, load_suite
from punie.evaluation.suite import EVAL_DIR
from punie.loop.demo import DemoConfig, eval_inputs
from punie.mlx.embedded import embedded_model_dir


def test_the_penalty_goes_with_every_request_and_into_the_report(tmp_path: Path) -> None:
    tasks = [t for t in load_suite([EVAL_DIR / "bookshelf.jsonl"]) if t.category == "direct_answer"]
    with ScriptedServer([text_reply("51")]) as server:
        target = EvalTarget("scripted", model=str(embedded_model_dir()), base_url=server.base_url)
        report = evaluate(tasks[:2], [target], out_dir=tmp_path, concurrency=1,
                          show_progress=False, frequency_penalty=0.5)  # fmt: skip
    assert len(server.bodies) >= 2
    assert {b["frequency_penalty"] for b in server.bodies} == {0.5}
    assert report.targets[0].frequency_penalty == 0.5
    assert "frequency penalty 0.5;" in Path(report.markdown_path or "").read_text()


def test_a_changed_penalty_changes_the_eval_stage_inputs(tmp_path: Path) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapters.safetensors").write_bytes(b"weights")
    tasks = load_suite([EVAL_DIR / "bookshelf.jsonl"])[:2]
    plain = eval_inputs(replace(DemoConfig(), eval_frequency_penalty=None), tasks, adapter)
    penalised = eval_inputs(DemoConfig(), tasks, adapter)  # the demo's default: 0.5
    assert plain != penalised
    assert penalised["frequency_penalty"] == 0.5
