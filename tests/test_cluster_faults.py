"""kill -9 of the leader while clients write (PUT and CAS) and read `?consistent` through every server of a
real three-server cluster, three times over; the recorded history must be linearizable, and every
acknowledged write must still be there at the end. Imports: stdlib, requests, tests.
"""

from __future__ import annotations

import base64
import random
import threading
import time
from pathlib import Path

import requests

from tests.clusterproc import ServerSet
from tests.linearizability import CAS, GET, PUT, History, check

CLIENTS = 6
KEYS = [f"lin/k{i}" for i in range(5)]
KILL_CYCLES = 3
TIMEOUT = 10.0


class Client(threading.Thread):
    """Random PUT / CAS / consistent GET against random servers, recorded in the shared history."""

    def __init__(self, number: int, cluster: ServerSet, hosts: list[int], history: History,
                 stop: threading.Event, seed: int) -> None:
        super().__init__(daemon=True)
        self.number = number
        self.cluster = cluster
        self.hosts = hosts
        self.history = history
        self.stop_event = stop
        self.rng = random.Random(seed)
        self.session = requests.Session()
        self.writes = 0
        self.acknowledged = 0

    def url(self, key: str) -> str:
        return f"http://{self.cluster.address(self.rng.choice(self.hosts))}:8500/v1/kv/{key}"

    def unique_value(self) -> str:
        self.writes += 1
        return f"c{self.number}-w{self.writes}"

    def read(self, key: str) -> tuple[bool, str | None, int]:
        """A recorded consistent read: (known, value, ModifyIndex)."""
        token = self.history.invoke(self.number, GET, key)
        try:
            response = self.session.get(self.url(key), params={"consistent": ""}, timeout=TIMEOUT)
        except requests.RequestException:
            self.history.fail(token)
            return False, None, 0
        if response.status_code == 404:
            self.history.complete(token, None)
            return True, None, 0
        if response.status_code != 200:
            self.history.fail(token)
            return False, None, 0
        entry = response.json()[0]
        value = base64.b64decode(entry["Value"]).decode()
        self.history.complete(token, value)
        return True, value, entry["ModifyIndex"]

    def write(self, key: str, value: str, cas: tuple[str | None, int] | None) -> None:
        if cas is None:
            token = self.history.invoke(self.number, PUT, key, (value,))
            params = {}
        else:
            token = self.history.invoke(self.number, CAS, key, (cas[0], value))
            params = {"cas": str(cas[1])}
        try:
            response = self.session.put(self.url(key), params=params, data=value, timeout=TIMEOUT)
        except requests.RequestException:
            self.history.fail(token)
            return
        if response.status_code != 200:
            self.history.fail(token)
            return
        result = response.json()
        assert result is True or cas is not None, response.text
        self.history.complete(token, result)
        if result is True:
            self.acknowledged += 1

    def run(self) -> None:
        while not self.stop_event.is_set():
            key = self.rng.choice(KEYS)
            action = self.rng.random()
            if action < 0.35:
                self.read(key)
            elif action < 0.7:
                self.write(key, self.unique_value(), None)
            else:
                known, value, index = self.read(key)
                if known:
                    self.write(key, self.unique_value(), (value, index))


def test_leader_kills_under_load_keep_history_linearizable(loopback: str, tmp_path: Path) -> None:
    cluster = ServerSet(loopback, tmp_path)
    hosts = [2, 3, 4]
    history = History()
    stop = threading.Event()
    clients = [Client(n, cluster, hosts, history, stop, seed=n) for n in range(CLIENTS)]
    try:
        cluster.launch_all(hosts)
        cluster.agreed_leader(hosts)
        for client in clients:
            client.start()
        for _ in range(KILL_CYCLES):
            time.sleep(2.0)
            leader = cluster.agreed_leader(hosts)
            cluster.servers[leader].kill()
            survivors = [h for h in hosts if h != leader]
            cluster.agreed_leader(survivors, timeout=15)
            time.sleep(1.0)
            cluster.launch(leader, join=survivors[0])
            cluster.agreed_leader(hosts, timeout=20)
        time.sleep(1.0)
        stop.set()
        for client in clients:
            client.join(TIMEOUT * 3)
            assert not client.is_alive()
        final = Client(CLIENTS, cluster, hosts, history, stop, seed=CLIENTS)
        for key in KEYS:
            assert final.read(key)[0], f"final read of {key} failed"
        result = check(history)
        assert result, result.explanation
        assert sum(client.acknowledged for client in clients) > 50
        for agent in cluster.servers.values():
            assert "Traceback" not in agent.log()
    finally:
        stop.set()
        cluster.cleanup()
