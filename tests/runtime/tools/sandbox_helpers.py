"""Helpers for the sandbox tests: the real sandbox, required under CI=true."""

from __future__ import annotations

import os

import pytest

from punie.runtime.tools import Sandbox, detect_sandbox

UNSANDBOXED = Sandbox.unsandboxed("tests of process handling on the host")


def require_sandbox() -> Sandbox:
    """The working sandbox; under CI=true its absence is a failure, elsewhere a skip."""
    sandbox = detect_sandbox(allow_unsandboxed=False)
    if not sandbox.confining:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"CI must run the sandbox tests, but: {sandbox.reason}")
        pytest.skip(sandbox.reason)
    return sandbox
