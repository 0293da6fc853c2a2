# Managed by nomad-bootstrapd: changes are overwritten. Put your own settings in another file of this directory.

client {
  enabled    = true
  servers    = ["127.0.0.2:4647", "127.0.0.3:4647", "127.0.0.4:4647"]
  node_class = "warm"

  # Jobs pick this pool by node_class or ${meta.pool}; jobs that name no node_pool run here too.
  node_pool = "default"

  meta {
    pool = "warm"
  }

  network_interface = "lo"

  options = {
    "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean"
  }

  # Garbage collection and kill timeout: pool warm, long-running services: collect calmly, let services drain.
  gc_interval              = "5m"
  gc_disk_usage_threshold  = 85
  gc_inode_usage_threshold = 80
  gc_max_allocs            = 100
  gc_parallel_destroys     = 2
  max_kill_timeout         = "1m"
}

plugin "raw_exec" {
  config {
    enabled = true
  }
}
