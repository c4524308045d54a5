# The seed deployment's client agent: consulpy agent -config-file configs/client.hcl
# It runs no Raft; it finds the servers through gossip and forwards every request to them.
# Gossip encryption is optional: set `encrypt` to the servers' key (from `consulpy keygen`).
datacenter = "dc1"
node_name  = "client"
data_dir   = "/consul/data"

bind_addr   = "127.0.0.5"
client_addr = "127.0.0.5"

retry_join     = ["127.0.0.2"]
retry_interval = "5s"

leave_on_terminate         = true
enable_local_script_checks = true

node_meta {
  rack = "r1"
}

dns_config {
  allow_stale = true
  max_stale   = "10s"
}
