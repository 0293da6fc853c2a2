# Managed by nomad-bootstrapd: changes are overwritten. Put your own settings in another file of this directory.

client {
  enabled    = true
  servers    = ["10.0.0.11:4647", "10.0.0.12:4647", "10.0.0.13:4647"]
  node_class = "special"

  # Jobs pick this pool by node_class or ${meta.pool}; jobs that name no node_pool run here too.
  node_pool = "default"

  meta {
    pool = "special"
  }

  options = {
    "driver.allowlist" = "docker,exec,raw_exec"
  }

  # Garbage collection and kill timeout: pool special, critical jobs: collect only under pressure, long graceful stop.
  gc_interval              = "10m"
  gc_disk_usage_threshold  = 90
  gc_inode_usage_threshold = 85
  gc_max_allocs            = 50
  gc_parallel_destroys     = 1
  max_kill_timeout         = "2m"
}
