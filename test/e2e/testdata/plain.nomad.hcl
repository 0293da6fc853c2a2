# The first job a new user writes: no node_pool, no constraint.
job "plain" {
  type = "batch"

  group "g" {
    task "t" {
      driver = "raw_exec"

      config {
        command = "/bin/sh"
        args    = ["-c", "echo hello"]
      }
    }
  }
}
