"""`punie experiment search`: which recipe buys the most per CPU-minute, measured on held-out code.

Each variant of the demo's recipe (a few `DemoConfig` fields changed) is trained on the demo's own
mixed data and measured two ways: the demo's agent eval (whole runs through a real server, on the
demo's held-out tasks and fixture suite, with the demo's serving settings), and the turn probe
(`punie.evaluation.turns`) of *every* assistant turn of every held-out task with a gold
conversation (first calls, later calls, answers from the tool results, direct answers), which
gives rates with tight intervals for little time. The table puts each variant's training minutes
beside both, with 95% intervals; the chart plots them against training minutes. Every step is a
cached stage of the demo's work folder (the demo recipe's training and eval are the demo's own
stages), and variants that freeze the same layers reuse the frozen-layer states
(`punie.mlx.train.frozen_store`); training minutes count those states' build time as if each
variant had built them, so variants compare fairly.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from punie.loop.demo import DemoConfig, demo_tasks, eval_inputs, prepare_data, train_stage
from punie.loop.stages import as_json, code_digest, content_digest
from punie.progress import Console


@dataclass(frozen=True)
class Variant:
    """A recipe: a name and the demo settings it changes."""

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


DEFAULT_VARIANTS: tuple[Variant, ...] = (
    Variant("demo recipe"),
    Variant("answers weigh 3", {"answer_weight": 3.0}),
    Variant("full top 8 layers", {"fine_tune_type": "full", "learning_rate": 1e-4}),
    Variant("lr 5e-4", {"learning_rate": 5e-4}),
    Variant("16 layers", {"num_layers": 16}),
    Variant("240 steps", {"iters": 240}),
)
PROBE_COLUMNS = (
    ("first_call", "first call"),
    ("answer", "answer from the result"),
    ("direct", "direct answer"),
    ("all_turns", "every turn"),
)
"""The probe's rates the table shows (per role, `punie.evaluation.turns.ROLES`, and overall)."""
AGENT_COLUMNS = (
    ("pass_rate", "passed"),
    ("argument_accuracy", "right tool + arguments"),
    ("tool_selection_accuracy", "tool selection"),
    ("termination_rate", "terminated"),
)


@dataclass
class SearchResult:
    rows: list[dict[str, Any]]
    markdown: Path
    json: Path
    chart: Path | None


def held_out_turn_cases(data: dict[str, Any]) -> list[Any]:
    """Every assistant turn of every held-out task that has a gold conversation beside it."""
    from punie.evaluation.turns import turn_cases
    from punie.records.conversation import read_conversations
    from punie.records.task import read_tasks

    cases = []
    for tasks_file in data["held_out_tasks"]:
        folder = Path(tasks_file).parent
        cases += turn_cases(
            read_tasks(Path(tasks_file)), read_conversations(folder / "conversations.jsonl")
        )
    return cases


def run_search(
    config: DemoConfig,
    variants: tuple[Variant, ...] = DEFAULT_VARIANTS,
    console: Console | None = None,
    *,
    probe_turns_too: bool = True,
) -> SearchResult:
    """Train every variant on the demo's data, measure base and each variant with the agent eval
    and (``probe_turns_too``) the turn probe, and write `search/search.md`, `.json` and `.png` in
    the work folder. The probe generates every held-out turn of every model (373 turns; the
    base model, which seldom stops, took over 20 minutes on a 2-core CPU)."""
    from punie.evaluation.evaluate import EvalTarget, evaluate
    from punie.evaluation.turns import probe_turns, summarize_turns
    from punie.records.jsonl import write_rows

    console = console or Console()
    stages, model_dir, data = prepare_data(config, console)
    tasks = demo_tasks(config, data)
    cases = held_out_turn_cases(data)
    cases_digest = hashlib.sha256(
        json.dumps([c.__dict__ for c in cases], sort_keys=True, default=str).encode()
    ).hexdigest()

    def probe(name: str, adapter: Path | None) -> dict[str, Any]:
        if not probe_turns_too:
            return {}

        def build(folder: Path) -> dict[str, Any]:
            verdicts = probe_turns(model_dir, cases, adapter=adapter)
            write_rows(folder / "verdicts.jsonl", (asdict(v) for v in verdicts))
            return {"summary": summarize_turns(verdicts)}

        weights = [adapter / "adapters.safetensors"] if adapter is not None else []
        inputs = {
            "cases": cases_digest,
            "model": str(model_dir),
            "weights": content_digest(*weights) if weights else None,
            "code": code_digest("punie.evaluation.turns", "punie.evaluation.checks"),
        }
        return stages.run(name, inputs, build)["summary"]

    def agent_eval(name: str, label: str, adapter: Path) -> dict[str, dict[str, Any]]:
        """The demo's eval (stage `eval`: base and tuned) or one variant's (its own stage)."""
        targets = [EvalTarget(label, model=str(model_dir), adapter=adapter)]
        if name == "eval":
            targets.insert(0, EvalTarget("base", model=str(model_dir)))

        def build(folder: Path) -> dict[str, Any]:
            report = evaluate(tasks, targets, out_dir=folder,
                              concurrency=config.eval_concurrency,
                              max_tokens=config.eval_max_tokens,
                              frequency_penalty=config.eval_frequency_penalty,
                              together=len(targets) > 1)  # fmt: skip
            return as_json(report)

        report = stages.run(name, eval_inputs(config, tasks, adapter), build)
        return {k: v["overall"] for k, v in report["metrics"].items()}

    base = {"variant": "base", "minutes": 0.0, "steps": 0, "settings": {}, "agent": {}}
    rows: list[dict[str, Any]] = [{**base, "probe": probe("search-base/probe", None)}]
    for variant in variants:
        recipe = replace(config, **variant.overrides)
        demo = not variant.overrides
        name = "train-punie" if demo else f"search-{variant.slug}/train"
        adapter = train_stage(stages, name, recipe, data["mixed_dir"], model_dir, "punie")
        result = json.loads((adapter / "train_result.json").read_text(encoding="utf-8"))
        seconds = float(result["seconds"]) + float(result.get("frozen_cache_skipped_seconds") or 0)
        label = "tuned" if demo else variant.slug
        agent = agent_eval("eval" if demo else f"search-{variant.slug}/eval", label, adapter)
        if demo:
            rows[0]["agent"] = agent["base"]
        rows.append({"variant": variant.name, "minutes": seconds / 60, "steps": recipe.iters,
                     "settings": variant.overrides, "agent": agent[label],
                     "probe": probe(f"search-{variant.slug}/probe", adapter)})  # fmt: skip

    out = config.workdir / "search"
    out.mkdir(parents=True, exist_ok=True)
    markdown = out / "search.md"
    markdown.write_text(search_table(rows, cases=len(cases), tasks=len(tasks)), encoding="utf-8")
    json_path = out / "search.json"
    json_path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    chart = write_search_chart(rows, out / "search.png")
    return SearchResult(rows=rows, markdown=markdown, json=json_path, chart=chart)


def _interval(entry: dict[str, Any] | None) -> str:
    if not entry or not entry.get("n"):
        return "-"
    return f"{entry['rate']:.0%} ({entry['low']:.0%}–{entry['high']:.0%}, n={entry['n']})"


def _agent_cell(metrics: dict[str, Any], key: str) -> str:
    interval = (metrics.get("rates") or {}).get(key)
    return _interval(interval) if interval else "-"


def search_table(rows: list[dict[str, Any]], *, cases: int, tasks: int) -> str:
    """Base and every variant as a Markdown table."""
    head = ["variant", "steps", "training min",
            *(f"{title} (probe)" for _, title in PROBE_COLUMNS),
            *(f"{title} (eval)" for _, title in AGENT_COLUMNS)]  # fmt: skip
    lines = [
        f"Turn probe: {cases} assistant turns of the held-out tasks, each generated greedily from "
        f"its gold history. Agent eval: {tasks} tasks (held-out and fixture suite). 95% Wilson "
        "intervals.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in rows:
        cells = [row["variant"], str(row["steps"]), f"{row['minutes']:.1f}"]
        cells += [_interval(row["probe"].get(key)) for key, _ in PROBE_COLUMNS]
        cells += [_agent_cell(row["agent"], key) for key, _ in AGENT_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_search_chart(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Probe rates (every turn, answers from the result) and tasks passed (agent eval) against
    training minutes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for row in rows:
        x = row["minutes"]
        label_at = row["agent"].get("pass_rate", 0.0)
        for key, color in (("all_turns", "tab:blue"), ("answer", "tab:green")):
            probe = row["probe"].get(key)
            if not probe or not probe.get("n"):
                continue
            spread = [[probe["rate"] - probe["low"]], [probe["high"] - probe["rate"]]]
            ax.errorbar([x], [probe["rate"]], yerr=spread, fmt="o", color=color, capsize=3)
            if key == "all_turns":
                label_at = probe["rate"]
        if "pass_rate" in row["agent"]:
            ax.plot([x], [row["agent"]["pass_rate"]], "s", color="tab:orange")
        ax.annotate(row["variant"], (x, label_at), textcoords="offset points", xytext=(6, 4),
                    fontsize=8)  # fmt: skip
    if any(row["probe"] for row in rows):
        ax.plot([], [], "o", color="tab:blue", label="every turn right (probe, 95% interval)")
        ax.plot([], [], "o", color="tab:green", label="answer from the result (probe)")
    ax.plot([], [], "s", color="tab:orange", label="passed (agent eval)")
    ax.set_xlabel("training minutes (frozen-layer cache included)")
    ax.set_ylabel("rate on held-out code")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
