"""`python -m selfplay` is the `selfplay` console script."""

from selfplay.cli import main

raise SystemExit(main())
