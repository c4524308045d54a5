# One of three servers: consulpy agent -config-file configs/server.hcl
datacenter = "dc1"
data_dir   = "/var/lib/consulpy"
node_name  = "server-1"
server     = true

bootstrap_expect = 3

bind_addr      = "0.0.0.0"
advertise_addr = "10.0.0.10"
client_addr    = "127.0.0.1 10.0.0.10"

retry_join     = ["10.0.0.11", "10.0.0.12"]
retry_interval = "15s"
rejoin_after_leave = true

encrypt = "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM="

performance {
  raft_multiplier = 1
}

ui_config {
  enabled = true
}

acl {
  enabled        = false
  default_policy = "allow"
}

limits {
  http_max_conns_per_client = 400
}

telemetry {
  disable_hostname = true
}
