"""Task builders, one module per family: lookups, file facts, multi-step, no-tool, recovery.

Each builder takes the `BuildContext` and one candidate and returns a `GeneratedTask`, or raises
`Skip` when the real tools and the facts disagree.
"""
