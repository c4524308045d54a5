# A server of the seed deployment (docker/compose.yaml's server1): consulpy agent -config-file configs/server.hcl
# The other two servers use the same file with their own -node, -bind and -client flags, which override it.
# Gossip encryption is optional: set `encrypt` to the output of `consulpy keygen`, the same key on every agent.
datacenter = "dc1"
node_name  = "server1"
data_dir   = "/consul/data"
server     = true

bootstrap_expect = 3

bind_addr   = "127.0.0.2"
client_addr = "127.0.0.2"

retry_join     = ["127.0.0.2"]
retry_interval = "5s"

performance {
  raft_multiplier = 1
}

limits {
  http_max_conns_per_client = 400
}
