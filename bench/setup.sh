#!/usr/bin/env bash
# setup.sh: install the load generators and peer servers the benchmarks need
# (wrk, dnsperf, etcd 3.4 server and client, unbound, curl) from Debian, only
# when one of them is missing; `apt-get update` runs at most once. Idempotent.
# Never fails `make bench`: if installing is impossible, the benchmarks that
# need a missing tool print a skip line instead.
# Usage: bash bench/setup.sh
set -uo pipefail
need=0
for tool in wrk dnsperf etcd etcdctl unbound curl; do
  command -v "$tool" >/dev/null 2>&1 || need=1
done
if [ "$need" -eq 0 ]; then
  echo "setup: all benchmark tools present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: some tools are missing and we are not root; affected benchmarks will be skipped" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if apt-get update -q && apt-get install -y -q --no-install-recommends wrk dnsperf etcd-server etcd-client unbound curl; then
  echo "setup: installed benchmark tools"
else
  echo "setup: apt-get failed; affected benchmarks will be skipped" >&2
fi
exit 0
