"""The `consulpy` entry point. `consulpy agent …` goes straight to the agent, without click and the command
table (they cost the agent start-up time and memory it never uses); everything else goes to the click group.

Imports: stdlib, consulpy.agent.run, consulpy.cli.app (each when needed).
"""

from __future__ import annotations

import sys


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["agent"]:
        from consulpy.agent.run import run_agent

        sys.exit(run_agent(args[1:]))
    from consulpy.cli.app import cli

    cli(prog_name="consulpy")
