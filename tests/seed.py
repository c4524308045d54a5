"""The seed topology's command lines, written once: docker/compose.yaml runs exactly these, and the loopback
seed-topology test launches them on its own 127.A.B block (servers .2 to .4, the client .5).

Imports: stdlib.
"""

from __future__ import annotations

from dataclasses import dataclass

SERVER, CLIENT = "server", "client"
EXPECTED_SERVERS = 3


@dataclass(slots=True, frozen=True)
class SeedMember:
    """One agent of the seed topology: its compose service name, role and host number in the block."""

    service: str
    role: str
    host: int


# The first entry is the server started first; every other agent joins it.
SEED_MEMBERS = (
    SeedMember("server1", SERVER, 2),
    SeedMember("server2", SERVER, 3),
    SeedMember("server3", SERVER, 4),
    SeedMember("client", CLIENT, 5),
)


def seed_args(role: str, host: str, first_server: str, data_dir: str, node: str) -> list[str]:
    """`consulpy` argv (from the `agent` subcommand on) for one seed agent bound to `host`.

    The first server uses `-retry-join` (to its own address) because nothing else listens when it starts and
    `-join` exits on failure; the other servers `-join` it; the client retries until a server answers.
    """
    if role == SERVER:
        join = "-retry-join" if host == first_server else "-join"
        role_args = ["-server", "-bootstrap-expect", str(EXPECTED_SERVERS), join, first_server]
    elif role == CLIENT:
        role_args = ["-retry-join", first_server]
    else:
        raise ValueError(f"unknown seed role {role!r}")
    return ["agent", *role_args, "-data-dir", data_dir, "-node", node, "-bind", host, "-client", host]


def member_args(member: SeedMember, block: str, data_dir: str) -> list[str]:
    """`seed_args` for `member` on the 127.A.B `block`, node named after its compose service."""
    first = f"{block}.{SEED_MEMBERS[0].host}"
    return seed_args(member.role, f"{block}.{member.host}", first, data_dir, member.service)
