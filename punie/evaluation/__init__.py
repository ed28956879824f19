"""The evaluator: eval suites, BFCL-style checks, metrics per category, reports, forgetting."""

from punie.evaluation.evaluate import EvalOptions, EvalTarget, evaluate
from punie.evaluation.report import EvalReport
from punie.evaluation.suite import load_suite

__all__ = ["EvalOptions", "EvalReport", "EvalTarget", "evaluate", "load_suite"]
