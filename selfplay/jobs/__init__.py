"""Jobs: the long-running things the CLI starts (generate, run, ...), each resumable from the run store."""
