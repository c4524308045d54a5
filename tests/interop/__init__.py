"""Interop tests: real Consul client libraries against a real consulpy dev agent."""
