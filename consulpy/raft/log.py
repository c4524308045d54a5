"""The in-memory Raft log of one node: snapshot base, entries after it, and the commit/applied/stable marks.

Entries above `stabled` have not been handed to storage yet; the node reports them in its next Ready.
`conf_indexes` lists the configuration-change entries, so the configuration is found without a scan.
Imports: stdlib, consulpy.raft.messages.
"""

from __future__ import annotations

from consulpy.raft.messages import Entry, EntryType, Snapshot


class RaftLog:
    def __init__(self, snapshot: Snapshot, entries: list[Entry], commit: int) -> None:
        self.snapshot = snapshot
        self.entries = [e for e in entries if e.index > snapshot.index]
        self.conf_indexes: list[int] = []
        self.reindex()
        self.committed = max(commit, snapshot.index)
        self.applied = snapshot.index
        self.stabled = self.last_index()
        self.unstable_snapshot: Snapshot | None = None

    def first_index(self) -> int:
        return self.snapshot.index + 1

    def last_index(self) -> int:
        return self.entries[-1].index if self.entries else self.snapshot.index

    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.snapshot.term

    def term(self, index: int) -> int | None:
        """The term at `index`, or None when compacted away or beyond the end."""
        if index == self.snapshot.index:
            return self.snapshot.term
        if index < self.snapshot.index or index > self.last_index():
            return None
        return self.entries[index - self.snapshot.index - 1].term

    def match_term(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries with lo <= index < hi; lo must not be compacted."""
        base = self.snapshot.index + 1
        return self.entries[lo - base:hi - base]

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        return last_term > self.last_term() or (last_term == self.last_term() and last_index >= self.last_index())

    def append(self, entries: list[Entry]) -> None:
        """Append, dropping any existing suffix from the first new index on."""
        if not entries:
            return
        first = entries[0].index
        del self.entries[first - self.first_index():]
        self.entries.extend(entries)
        while self.conf_indexes and self.conf_indexes[-1] >= first:
            self.conf_indexes.pop()
        self.conf_indexes.extend(e.index for e in entries if e.type == EntryType.CONF_CHANGE)
        self.stabled = min(self.stabled, first - 1)

    def reindex(self) -> None:
        """Rebuild `conf_indexes` after `entries` was replaced wholesale."""
        self.conf_indexes = [e.index for e in self.entries if e.type == EntryType.CONF_CHANGE]

    def entry(self, index: int) -> Entry:
        return self.entries[index - self.snapshot.index - 1]

    def find_conflict(self, entries: tuple[Entry, ...]) -> int:
        """Index of the first entry that is new or differs in term; 0 if all are already present."""
        for e in entries:
            if e.index <= self.snapshot.index:
                continue
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """Largest i <= index whose term is <= term (the fast-backtracking hint)."""
        i = min(index, self.last_index())
        while i > self.snapshot.index:
            t = self.term(i)
            if t is not None and t <= term:
                return i
            i -= 1
        return self.snapshot.index

    def commit_to(self, index: int) -> None:
        if index > self.committed:
            self.committed = index

    def unstable_entries(self) -> list[Entry]:
        return self.slice(self.stabled + 1, self.last_index() + 1)

    def stable_to(self, index: int, term: int) -> None:
        if self.match_term(index, term) and index > self.stabled:
            self.stabled = index

    def next_committed(self) -> list[Entry]:
        lo = max(self.applied + 1, self.first_index())
        return self.slice(lo, self.committed + 1) if self.committed >= lo else []

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the whole log by a snapshot received from the leader."""
        self.snapshot = snapshot
        self.entries = []
        self.conf_indexes = []
        self.committed = snapshot.index
        self.stabled = snapshot.index
        self.unstable_snapshot = snapshot

    def compact(self, snapshot: Snapshot) -> None:
        """Drop entries covered by a snapshot the application took locally."""
        self.entries = self.slice(snapshot.index + 1, self.last_index() + 1)
        self.conf_indexes = [i for i in self.conf_indexes if i > snapshot.index]
        self.snapshot = snapshot
