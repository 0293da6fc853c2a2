# Managed by nomad-bootstrapd: changes are overwritten. Put your own settings in another file of this directory.

name                 = "client-gpu"
region               = "global"
datacenter           = "dc2"
data_dir             = "/opt/nomad/data"
bind_addr            = "10.0.1.31"
disable_update_check = true

# Bare addresses: Nomad adds the HTTP, RPC and Serf ports.
advertise {
  http = "10.0.1.31"
  rpc  = "10.0.1.31"
  serf = "10.0.1.31"
}

acl {
  enabled = true
}

# No Consul: servers and clients find each other through server_join and servers.
consul {
  server_auto_join = false
  client_auto_join = false
  auto_advertise   = false
}
