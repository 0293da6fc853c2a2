# Managed by nomad-bootstrapd: changes are overwritten. Put your own settings in another file of this directory.

client {
  enabled    = true
  servers    = ["10.0.0.11:4647", "10.0.0.12:4647", "10.0.0.13:4647"]
  node_class = "batch"

  # Jobs pick this pool by node_class or ${meta.pool}; jobs that name no node_pool run here too.
  node_pool = "default"

  meta {
    pool = "batch"
  }

  options = {
    "driver.allowlist" = "docker,exec,raw_exec"
  }

  # Garbage collection and kill timeout: pool batch, short jobs: collect early and in parallel.
  gc_interval              = "1m"
  gc_disk_usage_threshold  = 70
  gc_inode_usage_threshold = 70
  gc_max_allocs            = 300
  gc_parallel_destroys     = 4
  max_kill_timeout         = "30s"
}

plugin "raw_exec" {
  config {
    enabled = true
  }
}
