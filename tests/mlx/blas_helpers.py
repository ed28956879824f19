"""Real shared libraries built with gcc for the BLAS tests: a wrong and a crashing sgemm."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

# Row-major only, as MLX calls it: fills C with ones instead of computing A @ B.
WRONG_SGEMM = r"""
#include <stddef.h>
void cblas_sgemm(int order, int ta, int tb, int m, int n, int k, float alpha,
                 const float *a, int lda, const float *b, int ldb, float beta,
                 float *c, int ldc) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
            c[(size_t)i * ldc + j] = 1.0f;
}
"""

# `ud2`: the process dies with SIGILL, as a library built for a newer CPU does.
SIGILL_SGEMM = r"""
void cblas_sgemm(void) { __builtin_trap(); }
"""


def build_library(source: str, folder: Path, name: str) -> Path:
    """Compile `source` into `folder/name` with gcc; CI (CI=true) fails rather than skips."""
    gcc = shutil.which("gcc")
    if gcc is None:
        message = "gcc is needed to build the test BLAS libraries (apt-get install gcc)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / f"{name}.c"
    src.write_text(source)
    library = folder / name
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O1", "-o", str(library), str(src)],
        check=True,
        capture_output=True,
    )
    return library
