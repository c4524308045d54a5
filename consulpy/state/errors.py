"""Errors the state store raises while applying a command. Imports: nothing."""


class StateError(Exception):
    """A command the store refuses; the FSM hands it back to the proposer as the command's error."""


class KVOpFailed(StateError):
    """A conditional KV operation whose condition did not hold (Consul's KV API answers `false`)."""
