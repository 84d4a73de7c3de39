"""Typed job configs: the shared sections and loader (`common`), one module per job (`generate`, `run`, `prm_label`)
with its config classes, its `PINNED` keys and its cross-field checks, and the one resume check (`resume`).

What it is for: TOML -> validated pydantic config (every problem in one message, at file:line), written whole into
the run directory, and compared with it on resume. To add a job's config: a module here with its `Section`s,
`PINNED`, `load_<job>_config` (read_toml -> apply_overrides -> validate -> paths `beside` the file -> a `Problems`
check), and `selfplay.jobs.setup.open_run(config, dir, PINNED, tasks)` in the job.
What it does not do: run anything (jobs read these objects).
"""

# The public face: these submodules (imported on use).
__all__ = ["common", "generate", "prm_label", "resume", "run"]
