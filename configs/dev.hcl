# A local development agent: consulpy agent -dev -config-file configs/dev.hcl
node_name  = "dev-1"
datacenter = "dc1"
log_level  = "debug"

enable_local_script_checks = true

ui_config {
  enabled = true
}

ports {
  http = 8500
  dns  = 8600
}

dns_config {
  node_ttl = "0s"
  service_ttl {
    "*" = "0s"
  }
}

service {
  name = "web"
  id   = "web-1"
  port = 8080
  tags = ["v1", "primary"]
  meta {
    team = "frontend"
  }
  check {
    id  = "web-ttl"
    ttl = "30s"
  }
}
