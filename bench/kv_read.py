"""Benchmark: `GET /v1/kv/<key>` at default consistency from 64 keep-alive connections, 5 s per run.

The load generator is a separate process of plain-socket HTTP/1.1 clients so that it competes for the
same two cores the way wrk would; issue 6 replaces it with wrk and adds the peers.
"""

from __future__ import annotations

import multiprocessing
import socket
import time

from bench.common import DevAgent, http_put, median

ADDRESS = "127.0.201.2"
CONNECTIONS = 64
SECONDS = 5.0


def _load(address: str, seconds: float, connections: int, out: multiprocessing.Queue) -> None:
    import selectors

    request = f"GET /v1/kv/bench/key HTTP/1.1\r\nHost: {address}\r\n\r\n".encode()
    selector = selectors.DefaultSelector()
    buffers: dict[socket.socket, bytes] = {}
    for _ in range(connections):
        sock = socket.create_connection((address, 8500))
        sock.setblocking(False)
        sock.send(request)
        buffers[sock] = b""
        selector.register(sock, selectors.EVENT_READ)
    done = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for key, _ in selector.select(0.1):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            data = buffers[sock] + sock.recv(65536)
            head, sep, rest = data.partition(b"\r\n\r\n")
            if not sep:
                buffers[sock] = data
                continue
            length = int(head.split(b"Content-Length: ", 1)[1].split(b"\r\n", 1)[0])
            if len(rest) < length:
                buffers[sock] = data
                continue
            buffers[sock] = rest[length:]
            done += 1
            sock.send(request)
    out.put(done / seconds)


def main() -> list[tuple[str, float, str]]:
    agent = DevAgent(ADDRESS)
    rates = []
    try:
        agent.start()
        http_put(f"{agent.http}/v1/kv/bench/key", b"x" * 256)
        for _ in range(3):
            queue: multiprocessing.Queue = multiprocessing.Queue()
            worker = multiprocessing.Process(target=_load, args=(ADDRESS, SECONDS, CONNECTIONS, queue))
            worker.start()
            rates.append(queue.get(timeout=SECONDS + 30))
            worker.join(10)
    finally:
        agent.stop()
    return [("GET /v1/kv/<key> req/s, 64 conns", median(rates), "≥ 14000")]


if __name__ == "__main__":
    for name, value, target in main():
        print(f"{name}: {value:.0f} (target {target})")
