"""The DNS frontend (port 8600, UDP and TCP): Consul's `.consul` zone answered from the state store.

`wire` parses queries and packs replies, `resolver` turns a question into records (pure, no sockets),
`server` owns the sockets, the answer cache and forwarding to recursors. Imports: stdlib, consulpy.agent,
consulpy.state.
"""
