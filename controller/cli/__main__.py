"""`python -m controller.cli`: the same as the `heatctl` command."""

from controller.cli import main

raise SystemExit(main())
