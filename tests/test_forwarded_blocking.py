"""A blocking read a follower forwards to the leader, when that leader dies mid-wait: like Consul, the follower
holds it for a new leader (rpc_hold_timeout plus the read's own wait) and runs it there, so the client sees
the next change rather than a 500 (on which, for one, the Go client's `api.Lock` monitor gives the lock up:
its MonitorRetries default to 0). Imports: stdlib, requests, tests.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import requests

from tests.clusterproc import ServerSet

HOSTS = (2, 3, 4)


def test_blocking_read_on_a_follower_outlives_the_leader_it_was_forwarded_to(loopback: str, tmp_path: Path) -> None:
    cluster = ServerSet(loopback, tmp_path)
    cluster.hcl = 'performance {\n  raft_multiplier = 1\n  rpc_hold_timeout = "1s"\n}\n'
    try:
        cluster.launch_all(HOSTS)
        leader = cluster.agreed_leader(HOSTS)
        follower, other = (host for host in HOSTS if host != leader)
        key = f"{cluster.servers[follower].http}/v1/kv/watched"
        assert requests.put(key, data="before", timeout=10).json() is True
        index = int(requests.get(key, timeout=10).headers["X-Consul-Index"])

        answer: dict[str, requests.Response] = {}
        reader = threading.Thread(target=lambda: answer.setdefault(
            "r", requests.get(key, params={"index": index, "wait": "30s"}, timeout=40)))
        reader.start()
        time.sleep(2.5)  # well past the 1 s hold timeout: the read is parked on the leader
        cluster.servers[leader].kill()
        cluster.agreed_leader([follower, other], timeout=10)
        assert reader.is_alive(), f"the read ended with the leader: {answer['r'].status_code} {answer['r'].text}"
        assert requests.put(f"{cluster.servers[other].http}/v1/kv/watched", data="after", timeout=10).json() is True
        reader.join(15)

        response = answer["r"]
        assert response.status_code == 200, response.text
        assert response.json()[0]["Value"] == "YWZ0ZXI="  # "after"
        assert int(response.headers["X-Consul-Index"]) > index
        for host in (follower, other):
            assert "Traceback" not in cluster.servers[host].log()
    finally:
        cluster.cleanup()
