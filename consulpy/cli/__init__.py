"""The `consulpy` command line: click dispatches subcommands; each parses Go-style flags like Consul's CLI.

May import: the HTTP client helpers here, agent.config (for `agent` and `validate`), stdlib.
"""
