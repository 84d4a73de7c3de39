"""`python -m selfplay` is the `selfplay` console script."""

from selfplay.cli import main

if __name__ == "__main__":  # guarded: worker processes (forkserver) re-import the main module
    raise SystemExit(main())
