# A critical service placed the way the production layout places work:
# pool warm by meta.pool, high priority, replicas spread over nodes, rolling
# updates with health checks, and the layout's restart and reschedule
# policies. It names no node_pool.
job "seed-warm" {
  type     = "service"
  priority = 90

  constraint {
    attribute = "${meta.pool}"
    value     = "warm"
  }

  spread {
    attribute = "${node.unique.id}"
  }

  update {
    max_parallel     = 1
    health_check     = "task_states"
    min_healthy_time = "2s"
    healthy_deadline = "1m"
    auto_revert      = true
  }

  group "web" {
    count = 1

    restart {
      attempts = 5
      interval = "30m"
      delay    = "15s"
      mode     = "delay"
    }

    reschedule {
      attempts       = 10
      interval       = "1h"
      delay          = "30s"
      delay_function = "exponential"
      max_delay      = "10m"
      unlimited      = false
    }

    task "sleep" {
      driver = "raw_exec"

      config {
        command = "/bin/sleep"
        args    = ["3600"]
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
