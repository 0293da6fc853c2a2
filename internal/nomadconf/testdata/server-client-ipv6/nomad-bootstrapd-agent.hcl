# Managed by nomad-bootstrapd: changes are overwritten. Put your own settings in another file of this directory.

name                 = "server-v6"
region               = "global"
datacenter           = "dc1"
data_dir             = "/opt/nomad/data"
bind_addr            = "::"
log_level            = "INFO"
disable_update_check = true

# Bare addresses: Nomad adds the HTTP, RPC and Serf ports.
advertise {
  http = "fd00:10::11"
  rpc  = "fd00:10::11"
  serf = "fd00:10::11"
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
