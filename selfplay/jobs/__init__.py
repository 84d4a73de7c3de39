"""Jobs: the long-running things the CLI starts (generate, run, ...), each resumable from the run store."""

# The public face: these submodules (imported on use).
__all__ = ["demo", "demo_serve", "generate", "loop", "prm_label", "prm_refresh", "prm_rollouts", "setup"]
