"""Gossip membership for consulpy: a sans-IO SWIM + Lifeguard core in the manner of hashicorp/memberlist.

`Memberlist` takes received packets and stream frames, stream replies and the time, and produces an
`Output`: UDP packets to send, stream exchanges (push-pull, TCP fallback probe) to perform, and events
(member join/update/leave/fail, user messages and state for the Serf layer, ping round trips, log lines).
The transport and Serf live outside it. Imports: stdlib, msgpack, consulpy.codec.

Driving it, for a transport:

    core = Memberlist(lan_config(), "node-a", "10.0.0.1:8301", rng=random.Random(), now=clock())
    core.join(["10.0.0.2:8301"], clock())
    loop: core.receive_packet(src, data, now) | reply = core.handle_stream(src, frame, now) |
          core.stream_reply(request.id, reply_or_None, now) | core.tick(now) at core.next_deadline(),
          then out = core.poll() and send out.packets, perform out.streams, dispatch out.events.
"""

from consulpy.gossip.config import META_MAX_SIZE, Config, lan_config, local_config, wan_config
from consulpy.gossip.events import (
    Event,
    JoinResult,
    LeaveComplete,
    LogLine,
    Member,
    MemberEvent,
    MemberEventKind,
    Output,
    Packet,
    PingComplete,
    RemoteState,
    StreamRequest,
    UserMessage,
)
from consulpy.gossip.messages import Address, MemberState
from consulpy.gossip.state import Memberlist

__all__ = [
    "META_MAX_SIZE",
    "Address",
    "Config",
    "Event",
    "JoinResult",
    "LeaveComplete",
    "LogLine",
    "Member",
    "MemberEvent",
    "MemberEventKind",
    "MemberState",
    "Memberlist",
    "Output",
    "Packet",
    "PingComplete",
    "RemoteState",
    "StreamRequest",
    "UserMessage",
    "lan_config",
    "local_config",
    "wan_config",
]
