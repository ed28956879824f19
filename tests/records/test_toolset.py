"""The tools the agent offers are, byte for byte, the tools training data is written with."""

from __future__ import annotations

from punie.records.toolset import SYSTEM_PROMPT, code_tool_schemas
from punie.runtime.agent import AgentSettings, derived_tool_schemas


def test_the_agent_offers_exactly_the_toolset_schemas() -> None:
    assert derived_tool_schemas() == code_tool_schemas()


def test_the_agent_uses_the_toolset_system_prompt() -> None:
    assert AgentSettings().system_prompt == SYSTEM_PROMPT


def test_callers_get_a_copy_they_cannot_spoil() -> None:
    schemas = code_tool_schemas()
    schemas[0]["function"]["name"] = "changed"
    assert code_tool_schemas()[0]["function"]["name"] == "run_command"
