# Managed by nomad-bootstrapd: changes are overwritten. Put your own settings in another file of this directory.

client {
  enabled    = true
  servers    = ["10.0.0.11:4647", "10.0.0.12:4647", "10.0.0.13:4647"]
  node_class = "batch"

  # Isolated: only jobs with node_pool = "batch" run here.
  node_pool = "batch"

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
