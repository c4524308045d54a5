"""Tuning knobs of the gossip core, named once with the reason for each default, and memberlist's presets.

`lan_config()` is what Consul's `gossip_lan` uses, `wan_config()` its `gossip_wan`, `local_config()` a
loopback/test profile; all three carry hashicorp/memberlist's values. Durations are seconds. Imports: stdlib.
"""

from __future__ import annotations

from dataclasses import dataclass

# Largest node metadata an alive message may carry (memberlist's MetaMaxSize), so that an alive message
# plus piggybacked gossip still fits one UDP packet.
META_MAX_SIZE = 512


@dataclass(slots=True, frozen=True)
class Config:
    # Failure detection: probe one member every interval; an ack must arrive within the timeout, which
    # should be the network's p99 round trip. The timeout is not stretched by local health: waiting longer
    # does not get UDP through, while the stretched interval leaves the TCP fallback and helpers more time.
    probe_interval: float = 1.0
    probe_timeout: float = 0.5
    # Members asked to probe on our behalf when a direct probe fails; one ack from any of them is enough.
    indirect_checks: int = 3
    # Suspicion lasts suspicion_mult * max(1, log10 N) * probe_interval at least, so it grows with the time
    # gossip needs to reach the suspect and carry its refutation back.
    suspicion_mult: int = 4
    # Lifeguard starts a suspicion at this multiple of the minimum and shrinks it as independent
    # confirmations arrive: a member with problems of its own gets many chances to recover before it
    # declares others failed, while an isolated member still makes progress.
    suspicion_max_timeout_mult: int = 6
    # A broadcast is retransmitted retransmit_mult * ceil(log10(N + 1)) times, enough to reach everyone
    # with high probability as the cluster grows.
    retransmit_mult: int = 4
    # Gossip (broadcasts not yet piggybacked on probes) goes to gossip_nodes random members every
    # gossip_interval; members dead for less than gossip_to_the_dead_time still get it so they can refute.
    gossip_interval: float = 0.2
    gossip_nodes: int = 3
    gossip_to_the_dead_time: float = 30.0
    # Full state exchange with one random member over TCP: expensive, so rare, and scaled up above 32
    # members; 0 disables it.
    push_pull_interval: float = 30.0
    # Local health: a saturating score (max multiplier - 1) that multiplies the probe interval when this
    # member misses acks and nacks or has to refute, so a slow member probes less and accuses less.
    awareness_max_multiplier: int = 8
    # Deadline the transport gives a stream (push-pull) exchange.
    tcp_timeout: float = 10.0
    # Largest UDP payload the core builds; piggybacked broadcasts fill a packet up to it.
    udp_buffer_size: int = 1400
    # The TCP fallback probe catches members whose UDP is blocked but who are otherwise alive.
    disable_tcp_pings: bool = False
    # A dead member's name may be taken by a different address after this long; 0 means never.
    dead_node_reclaim_time: float = 0.0
    # Lifeguard (awareness, dynamic suspicion, nacks, telling a suspect it is suspected). Off gives classic
    # SWIM, kept for the A/B comparison the simulator makes.
    lifeguard: bool = True
    # User broadcasts queued beyond this are pruned, oldest (most retransmitted) first, so a layer above
    # that outpaces the gossip rate cannot grow memory without bound.
    max_user_broadcasts: int = 4096


def lan_config() -> Config:
    """memberlist's DefaultLANConfig, the profile Consul uses on the serf LAN."""
    return Config()


def wan_config() -> Config:
    """memberlist's DefaultWANConfig: slower probes and gossip, for links with higher latency and loss."""
    return Config(
        tcp_timeout=30.0,
        suspicion_mult=6,
        push_pull_interval=60.0,
        probe_timeout=3.0,
        probe_interval=5.0,
        gossip_nodes=4,
        gossip_interval=0.5,
        gossip_to_the_dead_time=60.0,
    )


def local_config() -> Config:
    """memberlist's DefaultLocalConfig: loopback and tests, where round trips are short and loss is rare."""
    return Config(
        tcp_timeout=1.0,
        indirect_checks=1,
        retransmit_mult=2,
        suspicion_mult=3,
        push_pull_interval=15.0,
        probe_timeout=0.2,
        probe_interval=1.0,
        gossip_interval=0.1,
        gossip_to_the_dead_time=15.0,
    )
