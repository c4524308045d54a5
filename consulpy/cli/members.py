"""`consul join [-wan] ADDRESS...` and `consul force-leave [-prune] [-wan] NAME`: gossip membership changes.

Output, usage errors and exit codes are Consul's: join asks the agent once per address and succeeds when any
address answered; force-leave prints nothing on success. (`members` and `leave` live in agentcmds.)
Imports: consulpy.cli.base, consulpy.cli.goflags, consulpy.cli.http.
"""

from __future__ import annotations

from consulpy.cli.base import Call, Command, Fail, err, out, usage_error
from consulpy.cli.goflags import FlagSet
from consulpy.cli.http import ApiError

# --------------------------------------------------------------------------- join


def _join_flags(flags: FlagSet) -> None:
    flags.add("wan", "Join the WAN pool of servers instead of the LAN (the agent must be a server).", kind="bool",
              default=False)


def join(call: Call) -> int:
    if not call.args:
        return usage_error(call, "At least one address to join must be specified.")
    client = call.client()
    params = [("wan", "1")] if call.values["wan"] else []
    joined = 0
    for address in call.args:
        try:
            client.call("PUT", "/v1/agent/join/" + address, params)
        except ApiError as exc:
            err(f"Error joining address '{address}': {exc}")
        else:
            joined += 1
    if joined == 0:
        raise Fail("Failed to join any nodes.")
    out(f"Successfully joined cluster by contacting {joined} nodes.")
    return 0


# --------------------------------------------------------------------------- force-leave


def _force_leave_flags(flags: FlagSet) -> None:
    flags.add("prune", "Forget the member at once instead of keeping it as left until it is reaped.", kind="bool",
              default=False)
    flags.add("wan", "Act on the WAN pool of servers only.", kind="bool", default=False)
    flags.add("partition", "(Enterprise-only) The admin partition of the member; Consul CE refuses any.",
              default="")


def force_leave(call: Call) -> int:
    if len(call.args) != 1:
        return usage_error(call, "A single node name must be specified to force leave.")
    values = call.values
    client = call.client()
    params = [(flag, "1") for flag in ("prune", "wan") if values[flag]]
    if values["partition"]:
        params.append(("partition", values["partition"]))
    try:
        client.call("PUT", "/v1/agent/force-leave/" + call.args[0], params)
    except ApiError as exc:
        raise Fail(f"Error force leaving: {exc}") from None
    return 0


COMMANDS = [
    Command("join", "Ask the agent to join a cluster",
            "Usage: consul join [options] address ...\n\n  Asks the running agent to join the cluster that the "
            "given addresses\n  belong to; one member that answers is enough.", join, _join_flags, "client"),
    Command("force-leave", 'Force a member of the cluster into the "left" state',
            "Usage: consul force-leave [options] name\n\n  Marks a member as left for the whole cluster. A member "
            "that is in fact\n  alive will join again; the use is to clear out failed members that will\n  never "
            "return, which Consul would otherwise keep trying to reach until\n  they are reaped.", force_leave,
            _force_leave_flags, "client"),
]
