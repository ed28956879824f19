"""Secret redaction for harvested traces: API keys, tokens and private keys become markers.

Patterns follow the shapes the providers publish (OpenAI `sk-`, GitHub `ghp_`/`github_pat_`,
AWS `AKIA`, Slack `xox?-`, Google `AIza`, Hugging Face `hf_`), plus bearer tokens, key=value
secrets and PEM private-key blocks.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import structlog

log = structlog.get_logger(__name__)

_PATTERNS: list[tuple[str, re.Pattern[str], str]] = [
    (
        "private_key",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"
            r".*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----",
            re.DOTALL,
        ),
        "[REDACTED PRIVATE KEY]",
    ),
    ("openai_key", re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"), "[REDACTED API KEY]"),
    ("github_token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"), "[REDACTED GITHUB TOKEN]"),
    ("github_token", re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}"), "[REDACTED GITHUB TOKEN]"),
    ("aws_access_key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "[REDACTED AWS KEY]"),
    (
        "aws_secret_key",
        re.compile(r"(?i)(aws_secret_access_key\s*[=:]\s*[\"']?)[A-Za-z0-9/+=]{40}"),
        r"\1[REDACTED AWS SECRET]",
    ),
    ("slack_token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), "[REDACTED SLACK TOKEN]"),
    ("google_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), "[REDACTED API KEY]"),
    ("huggingface_token", re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"), "[REDACTED HF TOKEN]"),
    (
        "bearer_token",
        re.compile(r"(?i)\b(bearer\s+)(?!\[REDACTED)[A-Za-z0-9._~+/=-]{7,}[A-Za-z0-9_~+/=-]"),
        r"\1[REDACTED TOKEN]",
    ),
    (
        "assigned_secret",
        re.compile(
            r"(?i)\b((?:api[_-]?key|secret|token|password|passwd)\s*[=:]\s*[\"'])"
            r"(?!\[REDACTED)[A-Za-z0-9._~+/-]{12,}(?=[\"'])"
        ),
        r"\1[REDACTED SECRET]",
    ),
    (
        "assigned_secret",
        re.compile(
            r"\b([A-Z0-9_]*(?:API_KEY|SECRET|TOKEN|PASSWORD)[A-Z0-9_]*=)(?!\[REDACTED)[^\s\"']{8,}"
        ),
        r"\1[REDACTED SECRET]",
    ),
]


@dataclass
class Redactor:
    """Redacts secrets from text and JSON-like values, counting what it replaced per kind."""

    counts: Counter[str] = field(default_factory=Counter)

    def text(self, value: str) -> str:
        """`value` with every secret replaced by a marker such as `[REDACTED API KEY]`."""
        for kind, pattern, replacement in _PATTERNS:
            value, replaced = pattern.subn(replacement, value)
            if replaced:
                self.counts[kind] += replaced
                log.info("secret_redacted", kind=kind, count=replaced)
        return value

    def value(self, value: Any) -> Any:
        """Redact every string inside a JSON-like value (dicts, lists, strings)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value
