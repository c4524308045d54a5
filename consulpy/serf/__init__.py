"""The Serf layer for consulpy, sans-IO, on top of the gossip core (hashicorp/serf's behaviour): member
statuses alive/leaving/left/failed, tags, Lamport-ordered intents, user events, reaping and reconnecting,
Vivaldi network coordinates, and serf's local snapshot format for `-rejoin`.

Driving it, for a transport (as `consulpy.gossip` is driven):

    serf = Serf(SerfConfig(), "node-a", "10.0.0.1:8301", rng=random.Random(), now=clock(), tags={...})
    serf.join(["10.0.0.2:8301"], clock())
    loop: serf.receive_packet(src, data, now) | reply = serf.handle_stream(src, frame, now) |
          serf.stream_reply(request.id, reply_or_None, now) | serf.tick(now) at serf.next_deadline(),
          then out = serf.poll(): send out.packets, perform out.streams, dispatch out.events
          (MemberEvent, UserEvent, JoinDone, LeaveDone, LogLine).
Imports: stdlib, msgpack, consulpy.codec, consulpy.gossip.
"""

from consulpy.serf.config import USER_EVENT_SIZE_CEILING, SerfConfig, VivaldiConfig
from consulpy.serf.coordinate import CoordinateRejected, VivaldiClient, distance
from consulpy.serf.events import (
    Event,
    JoinDone,
    LeaveDone,
    Member,
    MemberEvent,
    MemberEventKind,
    MemberStatus,
    Output,
    SerfState,
    UserEvent,
)
from consulpy.serf.lamport import LamportClock
from consulpy.serf.messages import Coordinate, TagsTooLarge, decode_tags, encode_tags
from consulpy.serf.serf import Serf, SerfError, UserEventTooLarge
from consulpy.serf.snapshot import SnapshotState, decode_snapshot, encode_snapshot

__all__ = [
    "USER_EVENT_SIZE_CEILING",
    "Coordinate",
    "CoordinateRejected",
    "Event",
    "JoinDone",
    "LamportClock",
    "LeaveDone",
    "Member",
    "MemberEvent",
    "MemberEventKind",
    "MemberStatus",
    "Output",
    "Serf",
    "SerfConfig",
    "SerfError",
    "SerfState",
    "SnapshotState",
    "TagsTooLarge",
    "UserEvent",
    "UserEventTooLarge",
    "VivaldiClient",
    "VivaldiConfig",
    "decode_snapshot",
    "decode_tags",
    "distance",
    "encode_snapshot",
    "encode_tags",
]
