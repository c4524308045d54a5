"""The finite state machine: typed commands and the one `apply(index, command)` path into the state store.

Imports: consulpy.state, consulpy.codec, stdlib.
"""

from consulpy.fsm.commands import (
    Command,
    CoordinateBatchUpdate,
    DeregisterRequest,
    KVSRequest,
    RegisterRequest,
    RestoreRequest,
    SessionRequest,
    TxnRequest,
    decode_command,
    encode_command,
)
from consulpy.fsm.fsm import FSM, TxnOutcome

__all__ = [
    "FSM",
    "Command",
    "CoordinateBatchUpdate",
    "DeregisterRequest",
    "KVSRequest",
    "RegisterRequest",
    "RestoreRequest",
    "SessionRequest",
    "TxnOutcome",
    "TxnRequest",
    "decode_command",
    "encode_command",
]
