"""The Serf layer for consulpy, sans-IO, on top of the gossip core (hashicorp/serf's behaviour): member
statuses alive/leaving/left/failed, tags, Lamport-ordered intents, user events, queries and the internal
keyring queries, reaping and reconnecting, Vivaldi network coordinates, and serf's local snapshot format.

Driving it, for a transport (as `consulpy.gossip` is driven):

    serf = Serf(SerfConfig(), "node-a", "10.0.0.1:8301", rng=random.Random(), now=clock(), tags={...})
    serf.join(["10.0.0.2:8301"], clock())
    loop: serf.receive_packet(src, data, now) | reply = serf.handle_stream(src, frame, now) |
          serf.stream_reply(request.id, reply_or_None, now) | serf.tick(now) at serf.next_deadline(),
          then out = serf.poll(): send out.packets, perform out.streams, dispatch out.events
          (MemberEvent, UserEvent, JoinDone, LeaveDone, Query, QueryResponse, QueryAck, QueryDone,
          KeyringChanged, LogLine).
    query_id = serf.query(name, payload, now): QueryResponse per member, then QueryDone(query_id).
Imports: stdlib, msgpack, consulpy.codec, consulpy.gossip.
"""

from consulpy.serf.config import USER_EVENT_SIZE_CEILING, SerfConfig, VivaldiConfig
from consulpy.serf.coordinate import CoordinateRejected, VivaldiClient, distance
from consulpy.serf.events import (
    Event,
    JoinDone,
    KeyringChanged,
    LeaveDone,
    Member,
    MemberEvent,
    MemberEventKind,
    MemberStatus,
    Output,
    Query,
    QueryAck,
    QueryDone,
    QueryResponse,
    SerfState,
    UserEvent,
)
from consulpy.serf.lamport import LamportClock
from consulpy.serf.messages import (
    Coordinate,
    NodeKeyResponse,
    TagsTooLarge,
    decode_key_response,
    decode_tags,
    encode_tags,
)
from consulpy.serf.query import INSTALL_KEY_QUERY, LIST_KEYS_QUERY, REMOVE_KEY_QUERY, USE_KEY_QUERY
from consulpy.serf.serf import QueryTooLarge, Serf, SerfError, UserEventTooLarge
from consulpy.serf.snapshot import SnapshotState, decode_snapshot, encode_snapshot

__all__ = [
    "INSTALL_KEY_QUERY",
    "LIST_KEYS_QUERY",
    "REMOVE_KEY_QUERY",
    "USER_EVENT_SIZE_CEILING",
    "USE_KEY_QUERY",
    "Coordinate",
    "CoordinateRejected",
    "Event",
    "JoinDone",
    "KeyringChanged",
    "LamportClock",
    "LeaveDone",
    "Member",
    "MemberEvent",
    "MemberEventKind",
    "MemberStatus",
    "NodeKeyResponse",
    "Output",
    "Query",
    "QueryAck",
    "QueryDone",
    "QueryResponse",
    "QueryTooLarge",
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
    "decode_key_response",
    "decode_snapshot",
    "decode_tags",
    "distance",
    "encode_snapshot",
    "encode_tags",
]
