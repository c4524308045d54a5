"""Server duties: the consensus seam that commands are proposed through, and the leader's own work.

Imports: consulpy.fsm, consulpy.state, stdlib (and later raft and gossip).
"""
