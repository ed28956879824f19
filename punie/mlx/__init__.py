"""MLX child processes: one launcher (`child`) and the entry the children run (`entry`)."""

from punie.mlx.child import ChildError, MemoryPolicy, MlxChild, call, format_bytes, run_main, start

__all__ = ["ChildError", "MemoryPolicy", "MlxChild", "call", "format_bytes", "run_main", "start"]
