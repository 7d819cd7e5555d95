"""`python -m engine.cli`: the same as the `rulesctl` console script."""

from engine.cli import main

main()
