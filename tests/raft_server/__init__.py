"""Tests of the Raft server: three RaftServers over loopback TCP in one process."""
