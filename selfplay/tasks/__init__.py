"""Tasks: the record (`task`), where they come from (`sources`: jsonl, parquet, csv, hf:), the built-in families
(`builtin`), and the loop's train / eval / seed split (`loop`).

What it is for: everything a job needs to know about what it asks. What it does not do: sample or verify.
"""

# The public face: these submodules (imported on use).
__all__ = ["builtin", "load", "loop", "sources", "task"]
