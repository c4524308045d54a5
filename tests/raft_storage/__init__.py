"""Tests of the durable Raft storage: WAL recovery, corruption handling, snapshot atomicity (C1-C5)."""
