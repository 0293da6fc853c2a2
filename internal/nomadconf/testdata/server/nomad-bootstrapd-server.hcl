# Managed by nomad-bootstrapd 0.1.0: changes are overwritten. Put your own settings in another file of this directory.

server {
  enabled            = true
  bootstrap_expect   = 3
  encrypt            = "+QUb8DBp48NZJUzeIBVlceFe0mRoNloSr2ifGMxElwI="
  rejoin_after_leave = true

  server_join {
    retry_join     = ["10.0.0.11:4648", "10.0.0.12:4648", "10.0.0.13:4648"]
    retry_interval = "15s"
  }
}

# Autopilot removes servers that stay dead, so a replacement restores the quorum.
autopilot {
  cleanup_dead_servers = true
}
