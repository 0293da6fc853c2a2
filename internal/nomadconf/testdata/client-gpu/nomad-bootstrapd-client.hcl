# Managed by nomad-bootstrapd: changes are overwritten. Put your own settings in another file of this directory.

client {
  enabled    = true
  servers    = ["10.0.0.11:4647", "10.0.0.12:4647", "10.0.0.13:4647"]
  node_class = "gpu"

  # Jobs pick this pool by node_class or ${meta.pool}; jobs that name no node_pool run here too.
  node_pool = "default"

  meta {
    pool      = "gpu"
    gpu_model = "nvidia-a100"
    note      = "say \"hi\" to C:\\gpu at 100% of $HOME, 显卡"
    zone      = "rack-7"
  }

  options = {
    "driver.allowlist"     = "docker,exec"
    "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean"
  }

  # Garbage collection and kill timeout: Nomad's client defaults.
  gc_interval              = "1m"
  gc_disk_usage_threshold  = 80
  gc_inode_usage_threshold = 70
  gc_max_allocs            = 50
  gc_parallel_destroys     = 2
  max_kill_timeout         = "30s"
}
