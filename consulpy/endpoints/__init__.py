"""Server-side endpoints named after Consul's RPCs (Catalog.*, Health.*, KVS.*, Session.*, Txn.*, Status.*).

Frontends call these; they read the state store (blocking when asked) and propose writes through the
consensus seam. A client agent will call the same operations over RPC.
Imports: consulpy.state, consulpy.fsm, consulpy.server, stdlib.
"""
