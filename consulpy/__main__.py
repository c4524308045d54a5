"""Allows `python -m consulpy`, the same as the `consulpy` console script."""

from consulpy.cli.main import main

main()
