"""Typed job configs: the shared sections and loader (`common`), one module per job with its pinned keys.

What it is for: TOML -> validated pydantic config, written whole into the run directory, and the resume check.
What it does not do: run anything (jobs read these objects).
"""
