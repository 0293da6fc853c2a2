# Managed by nomad-bootstrapd: changes are overwritten. Put your own settings in another file of this directory.

server {
  enabled            = true
  bootstrap_expect   = 3
  encrypt            = "+QUb8DBp48NZJUzeIBVlceFe0mRoNloSr2ifGMxElwI="
  rejoin_after_leave = true

  server_join {
    retry_join     = ["[fd00:10::11]:4648", "[fd00:10::12]:4648", "[fd00:10::13]:14648"]
    retry_interval = "1m30s"
  }
}

# Autopilot removes servers that stay dead, so a replacement restores the quorum.
autopilot {
  cleanup_dead_servers = true
}
