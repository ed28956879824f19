"""The demo's learning-rate schedules, built by mlx-lm's own `build_schedule`."""

from __future__ import annotations

import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest
from mlx_lm.tuner.utils import build_schedule

from punie.errors import ConfigError
from punie.loop.demo import DemoConfig, lr_schedule


def test_constant_is_no_schedule() -> None:
    assert lr_schedule(DemoConfig()) is None


def test_cosine_warms_up_to_the_peak_then_decays_to_a_twentieth() -> None:
    config = DemoConfig(lr_schedule="cosine", learning_rate=4e-4, iters=80)
    schedule = build_schedule(lr_schedule(config))
    rate = [schedule(step).item() for step in range(81)]
    assert rate[0] == pytest.approx(4e-5)
    assert max(rate) == pytest.approx(4e-4, rel=1e-3)
    assert rate.index(max(rate)) == 5
    assert all(a >= b for a, b in pairwise(rate[5:]))
    assert rate[80] == pytest.approx(2e-5, rel=1e-2)


def test_an_unknown_schedule_is_named() -> None:
    message = "--lr-schedule must be 'constant' or 'cosine', got 'step'"
    with pytest.raises(ConfigError, match=message):
        lr_schedule(DemoConfig(lr_schedule="step"))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--balance", "sideways"], "--balance must be one of down, over, got 'sideways'"),
        (["--lr-schedule", "step"], "--lr-schedule must be 'constant' or 'cosine', got 'step'"),
        (
            ["--fine-tune-type", "qlora"],
            "--fine-tune-type must be 'lora', 'dora' or 'full', got 'qlora'",
        ),
        (["--answer-weight", "0"], "--answer-weight must be above 0, got 0.0"),
    ],
)
def test_a_bad_recipe_flag_is_named_before_any_stage_runs(
    flags: list[str], message: str, tmp_path: Path
) -> None:
    punie = str(Path(sys.executable).with_name("punie"))
    work = tmp_path / "demo"
    done = subprocess.run(
        [punie, "demo", "--workdir", str(work), *flags], capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert message in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert not work.exists()
