"""Tokens a model generated after it ended its turn: the cost of the earlier looping failure.

Definition (per model reply, summed over a run's replies, the final answer included):

- the reply's text still holds an end-of-turn marker or a leaked role header (nothing cut it:
  `--no-stop` sends no stop sequences and turns the client cut off): the tokens of the text
  after the first such marker, counted with the model's tokenizer (the marker itself is the
  end of the turn and is not counted);
- the client cut the reply (`cut_at_marker`; the server ignored `stop`): the tokens the server
  generated after the end of the turn, which the cut hid from the client but not from the
  server's usage: the completion tokens it reported, less the tokens of the part that was kept
  (text and tool calls) and one for the marker. The cut makes the run usable; it does not make
  the overrun free (a run with any tokens after the end does not pass);
- otherwise 0: the server stopped at a stop sequence or the end-of-sequence token.

With stop sequences on the wire and a server that honours them this is 0 by construction. A
reply whose tool calls the server parsed out of its text counts them as their JSON, a few
tokens short of the tagged text the model wrote, so such a cut reply may read a few tokens high.
Without a tokenizer (a remote model) tokens are estimated at 4 characters each.

An *invented turn* is what the earlier failure looked like: after the end of its turn, a reply
goes on to write the next turn's role header itself (`<|im_start|>user`, `<|im_start|>system`,
a plain-text `USER:`), inventing the user's next message. It can only be seen in text nothing
cut (`--no-stop`); a cut reply's tokens after the end still count above.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from punie.records.trace import ModelExchange, RunOutcome, ToolCallRecord

log = structlog.get_logger(__name__)

CHARS_PER_TOKEN_ESTIMATE = 4
ROLE_NAMES = ("user", "assistant", "system", "tool", "model", "ipython")


@dataclass(frozen=True)
class TokenCounter:
    """Counts tokens with a model's `tokenizer.json`, or estimates them without one."""

    tokenizer: Any = field(default=None, repr=False)
    name: str = "estimate (4 characters a token)"

    @classmethod
    def for_model(cls, model: str | Path | None) -> TokenCounter:
        """The counter for a local model folder with a `tokenizer.json`, else the estimate."""
        if model is not None and (Path(model) / "tokenizer.json").is_file():
            from tokenizers import Tokenizer

            path = Path(model) / "tokenizer.json"
            return cls(Tokenizer.from_file(str(path)), f"tokenizer of {Path(model).name}")
        return cls()

    @property
    def exact(self) -> bool:
        return self.tokenizer is not None

    def count(self, text: str) -> int:
        """Tokens in `text`; special tokens written in it count as one token each."""
        if not text:
            return 0
        if self.tokenizer is None:
            return math.ceil(len(text) / CHARS_PER_TOKEN_ESTIMATE)
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)


def first_marker(text: str, markers: Sequence[str]) -> tuple[int, str] | None:
    """Where the first of `markers` starts in `text`, and which one, or None."""
    hits = [(text.find(m), m) for m in markers if m and m in text]
    return min(hits) if hits else None


def reply_overrun(
    exchange: ModelExchange,
    markers: Sequence[str],
    counter: TokenCounter,
    calls: Sequence[ToolCallRecord] = (),
) -> int:
    """Tokens generated after the end of the turn in one reply (see the module docstring);
    `calls` are the tool calls the reply asked for."""
    hit = first_marker(exchange.text, markers)
    if hit is not None:
        start, marker = hit
        return counter.count(exchange.text[start + len(marker) :])
    if exchange.cut_at_marker:
        kept = exchange.text + "".join(
            json.dumps({"arguments": c.arguments, "name": c.name}, sort_keys=True) for c in calls
        )
        return max(0, exchange.output_tokens - counter.count(kept) - 1)
    return 0


def run_overrun(outcome: RunOutcome, markers: Sequence[str], counter: TokenCounter) -> int:
    """Tokens generated after the end of the turn, summed over a run's replies."""
    return sum(reply_overrun(e, markers, counter, outcome.calls_of(e)) for e in outcome.exchanges)


def invented_turn(text: str, markers: Sequence[str]) -> bool:
    """Whether a reply's text, from its first end-of-turn marker or leaked header on, writes a
    role header: a marker followed by a role name (`<|im_start|>user`), or a plain-text header
    such as `USER:` (see the module docstring)."""
    hit = first_marker(text, markers)
    if hit is None:
        return False
    rest = text[hit[0] :]
    for marker in markers:
        if not marker:
            continue
        if marker.rstrip().endswith(":"):  # "\nUSER:" names the role itself
            if marker in rest:
                return True
            continue
        pattern = re.escape(marker) + r"\s*([A-Za-z_]+)"
        if any(m.group(1).lower() in ROLE_NAMES for m in re.finditer(pattern, rest)):
            return True
    return False


def run_invented_turns(exchanges: Sequence[ModelExchange], markers: Sequence[str]) -> int:
    """How many of a run's replies invented a turn after their end."""
    return sum(invented_turn(e.text, markers) for e in exchanges)
