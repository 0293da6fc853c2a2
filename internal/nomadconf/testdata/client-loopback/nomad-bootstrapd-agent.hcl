# Managed by nomad-bootstrapd: changes are overwritten. Put your own settings in another file of this directory.

name                 = "client-loopback"
region               = "global"
datacenter           = "dc1"
data_dir             = "/opt/nomad/data"
bind_addr            = "127.0.0.5"
log_level            = "INFO"
disable_update_check = true

# Bare addresses: Nomad adds the HTTP, RPC and Serf ports.
advertise {
  http = "127.0.0.5"
  rpc  = "127.0.0.5"
  serf = "127.0.0.5"
}

acl {
  enabled = true
}

telemetry {
  collection_interval        = "1s"
  disable_hostname           = true
  prometheus_metrics         = true
  publish_allocation_metrics = true
  publish_node_metrics       = true
}

# No Consul: servers and clients find each other through server_join and servers.
consul {
  server_auto_join = false
  client_auto_join = false
  auto_advertise   = false
}
