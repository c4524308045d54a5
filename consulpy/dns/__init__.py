"""The DNS frontend (port 8600, UDP and TCP): Consul's `.consul` zone, answered from the state store on servers
and dev agents and from the servers (stale RPCs through the endpoints) on client agents.

`wire` parses queries and packs replies, `resolver` turns a question into records (pure, no sockets),
`remote` fetches a client agent's reads, `server` owns the sockets, the answer cache and forwarding to
recursors. Imports: stdlib, consulpy.agent, consulpy.endpoints, consulpy.state.
"""
