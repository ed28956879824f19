"""`punie experiment recipes`: the earlier failure reproduced and fixed, as one table.

The same model is trained on the same data with the earlier recipe (`seed`: rendered text, loss
on every token) and with Punie's (loss on every assistant turn, each ending with its end-of-turn
token); each adapter is evaluated with stop sequences on the wire and without them (`--no-stop`
also turns off the client-side cut).

SmolLM2's end-of-sequence token *is* `<|im_end|>`, so mlx-lm stops there whatever `stop` says
and those four rows cannot show the runaway. The earlier stack served a model whose
end-of-sequence was not its end-of-turn marker (a base-model tokenizer config's
`<|endoftext|>`), so without stop sequences it wrote past `<|im_end|>` into invented turns.
The experiment also runs that configuration faithfully: the same weights and adapters served
from `punie.mlx.variants.eos_variant` (eos `<|endoftext|>`), with and without stop sequences.
Its rows show the tokens generated after the answer (the server's usage) and the runs that
invented the next turn.

Stages are shared with `punie demo` (same work folder): data and the Punie adapter are reused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from punie.loop.demo import RUNTIME_CODE, DemoConfig, build_data, train_stage
from punie.loop.stages import Stages, code_digest, content_digest
from punie.progress import Console

COLUMNS = (
    ("termination_rate", "terminated", "{:.0%}"),
    ("clean_stop_rate", "answered, nothing after end-of-turn", "{:.0%}"),
    ("tool_call_rate", "tool-call rate (tool tasks)", "{:.0%}"),
    ("argument_accuracy", "right tool + arguments (tool tasks)", "{:.0%}"),
    ("tokens_after_end_per_task", "tokens after the end of the turn", "{:.1f}"),
    ("invented_turn_rate", "invented turns", "{:.0%}"),
    ("loop_rate", "loop rate", "{:.0%}"),
    ("degenerate_rate", "degenerate rate", "{:.0%}"),
    ("pass_rate", "passed", "{:.0%}"),
)


@dataclass
class ExperimentResult:
    rows: dict[str, dict[str, Any]]
    """'recipe[, eos <|endoftext|>], stop on|off' -> overall metrics."""
    markdown: Path
    json: Path
    chart: Path


EARLIER_EOS = "<|endoftext|>"
"""The end-of-sequence token of the earlier stack's model configuration."""


def run_recipes_experiment(config: DemoConfig, console: Console | None = None) -> ExperimentResult:
    """Train both recipes, evaluate each with and without stop sequences, on the embedded model
    and on its earlier-stack configuration (eos `<|endoftext|>`), and write the table."""
    from punie.evaluation.evaluate import EvalTarget, evaluate
    from punie.mlx.embedded import embedded_model_dir
    from punie.mlx.variants import eos_variant
    from punie.records.task import read_tasks

    console = console or Console()
    stages = Stages(config.workdir, console=console)
    model_dir = embedded_model_dir()
    data = build_data(stages, config, model_dir)
    adapters = {
        recipe: train_stage(stages, f"train-{recipe}", config, data["mixed_dir"], model_dir, recipe)
        for recipe in ("seed", "punie")
    }
    tasks = list(read_tasks(Path(data["eval_tasks"])))
    served = {"": model_dir, f", eos {EARLIER_EOS}": eos_variant(model_dir, EARLIER_EOS)}
    rows: dict[str, dict[str, Any]] = {}
    for suffix, model in served.items():
        for no_stop in (True, False):
            wire = "off" if no_stop else "on"

            def run_eval(folder: Path, no_stop: bool = no_stop, model: Path = model) -> dict:
                report = evaluate(
                    tasks,
                    [
                        EvalTarget(recipe, model=str(model), adapter=adapter)
                        for recipe, adapter in adapters.items()
                    ],
                    out_dir=folder,
                    concurrency=config.eval_concurrency,
                    no_stop=no_stop,
                    max_tokens=config.eval_max_tokens,
                )
                return report.model_dump(mode="json")

            inputs = {
                "tasks": [t.id for t in tasks],
                "adapters": {k: str(v) for k, v in adapters.items()},
                "weights": content_digest(
                    *(Path(a) / "adapters.safetensors" for a in adapters.values())
                ),
                "max_tokens": config.eval_max_tokens,
                "code": code_digest(*RUNTIME_CODE),
            }
            if suffix:
                inputs["model"] = content_digest(
                    *(model / n for n in ("config.json", "generation_config.json",
                                          "tokenizer_config.json"))
                )  # fmt: skip
            name = "experiment" + ("-eos-endoftext" if suffix else "") + f"-stop-{wire}"
            report = stages.run(name, inputs, run_eval)
            for recipe in adapters:
                rows[f"{recipe} recipe{suffix}, stop {wire}"] = report["metrics"][recipe]["overall"]

    out = config.workdir / "experiment"
    out.mkdir(parents=True, exist_ok=True)
    markdown = out / "recipes.md"
    markdown.write_text(recipes_table(rows, runs=len(tasks)))
    json_path = out / "recipes.json"
    json_path.write_text(json.dumps(rows, indent=2))
    chart = out / "recipes.png"
    write_chart(rows, chart)
    return ExperimentResult(rows=rows, markdown=markdown, json=json_path, chart=chart)


def recipes_table(rows: dict[str, dict[str, Any]], *, runs: int) -> str:
    """The 2x2 as a Markdown table (one row per recipe and stop setting)."""
    header = "| recipe, stop sequences | " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 1)]
    for label, metrics in rows.items():
        cells = []
        for key, _, fmt in COLUMNS:
            value = metrics.get(key)
            cells.append("n/a" if value is None else fmt.format(value))
        cell = label.replace("|", "\\|")  # `<|endoftext|>` in a Markdown table cell
        lines.append(f"| {cell} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"{runs} held-out tasks per row. Rows with `eos {EARLIER_EOS}` serve the same weights and "
        "adapters with the earlier stack's end-of-sequence token, so mlx-lm does not stop at "
        "`<|im_end|>` by itself. Tokens after the end of the turn: from the reply's text when "
        "nothing cut it, else from the server's usage. Invented turns: runs with a reply that "
        "went on to write the next turn's role header (`<|im_start|>user`)."
    )
    return "\n".join(lines) + "\n"


def write_chart(rows: dict[str, dict[str, Any]], path: Path) -> None:
    """Grouped bars of the rates, one group per recipe/stop setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k, _, fmt in COLUMNS if fmt.endswith("%}")]
    titles = [t for k, t, fmt in COLUMNS if fmt.endswith("%}")]
    fig, ax = plt.subplots(figsize=(11, 4.5))
    width = 0.8 / max(len(rows), 1)
    for i, (label, metrics) in enumerate(rows.items()):
        values = [metrics.get(k) or 0.0 for k in keys]
        ax.bar([x + i * width for x in range(len(keys))], values, width, label=label)
    ax.set_xticks([x + width * (len(rows) - 1) / 2 for x in range(len(keys))])
    ax.set_xticklabels(titles, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("rate")
    ax.set_title(
        "Earlier recipe vs Punie's, with and without stop sequences, "
        f"and the earlier eos {EARLIER_EOS}"
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
