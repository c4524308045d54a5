"""Tuning knobs of the Serf layer, named once with hashicorp/serf's defaults (Consul's LAN values where
Consul overrides them) and the reason for each. Durations are seconds. Imports: stdlib, consulpy.gossip.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consulpy.gossip import Config as GossipConfig
from consulpy.gossip import lan_config

# Serf's hard ceiling on a user event's name plus payload (9 KiB); `user_event_size_limit` may not exceed it.
USER_EVENT_SIZE_CEILING = 9 * 1024


@dataclass(slots=True, frozen=True)
class VivaldiConfig:
    """hashicorp/serf coordinate.DefaultConfig: the network coordinate model and how fast it adapts."""

    # Euclidean dimensions of a coordinate; 8 fits real networks well (Dabek et al.).
    dimensionality: int = 8
    # Error estimates start, and are capped, here: a new node trusts its coordinate least.
    vivaldi_error_max: float = 1.5
    # How fast the error estimate (ce) and the coordinate itself (cc) move towards each observation.
    vivaldi_ce: float = 0.25
    vivaldi_cc: float = 0.25
    # Recent (rtt - distance) residuals averaged into a per-node adjustment term; 0 disables it.
    adjustment_window_size: int = 20
    # A height models the access link every path crosses; it never drops below this (seconds).
    height_min: float = 10.0e-6
    # RTT samples per peer whose median is used, so one delayed probe does not yank the coordinate.
    latency_filter_size: int = 3
    # A weak pull towards the origin keeps the whole system from drifting away over time.
    gravity_rho: float = 150.0


@dataclass(slots=True, frozen=True)
class SerfConfig:
    gossip: GossipConfig = field(default_factory=lan_config)
    # Recent user events remembered per Lamport time slot, for de-duplication and push-pull catch-up.
    event_buffer: int = 512
    # Largest user event (name + payload before encoding, and the encoded message after).
    user_event_size_limit: int = 512
    # Failed members are kept (and retried) this long before being reaped. Consul's LAN default is 72h
    # (serf's own is 24h): a member down over a weekend still comes back as the same node.
    reconnect_timeout: float = 72 * 3600.0
    # Left members are remembered this long, so a late push-pull cannot resurrect them.
    tombstone_timeout: float = 24 * 3600.0
    # How often failed and left members are checked against those timeouts.
    reap_interval: float = 15.0
    # How often one failed member is tried again (with probability failed/alive), so partitions heal.
    reconnect_interval: float = 30.0
    # Intents about members not known yet are held this long, for when the member itself shows up.
    recent_intent_timeout: float = 5 * 60.0
    # A leave waits at most this long for its intent to be gossiped; also the prune delay for a leaving member.
    broadcast_timeout: float = 5.0
    # After a leave is gossiped, time for it to propagate before the caller shuts the transport down.
    leave_propagate_delay: float = 1.0
    # Recent queries remembered per query-clock time slot, so a query re-gossiped to us is handled once.
    query_buffer: int = 512
    # A query stays open gossip_interval * query_timeout_mult * ceil(log10(N + 1)) by default: time for the
    # query to reach every member by gossip and for the direct answers to come back.
    query_timeout_mult: int = 16
    # Largest encoded query and query response; both must fit one gossip packet with room to spare.
    query_size_limit: int = 1024
    query_response_size_limit: int = 1024
    # Network coordinates from probe round trips (Vivaldi); off saves the ack payload.
    disable_coordinates: bool = False
    vivaldi: VivaldiConfig = field(default_factory=VivaldiConfig)

    def __post_init__(self) -> None:
        if self.user_event_size_limit > USER_EVENT_SIZE_CEILING:
            raise ValueError(f"user event size limit exceeds limit of {USER_EVENT_SIZE_CEILING} bytes")
        if self.event_buffer < 1:
            raise ValueError("event buffer must hold at least one slot")
        if self.query_buffer < 1:
            raise ValueError("query buffer must hold at least one slot")
