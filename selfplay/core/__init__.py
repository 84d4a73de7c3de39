"""The bottom tier of the engine: the run store (all SQL, its schema and migrations), atomic files, errors, crash points.

What it is for: what every other tier stands on. Nothing here imports another tier of `selfplay`.
What it does not do: decide anything about generation, verification or training.
"""

# The public face: these submodules (imported on use).
__all__ = ["crashpoints", "errors", "files", "schema", "store", "view"]
