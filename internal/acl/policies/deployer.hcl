# deployer: CI/CD releases. Reads, plans, submits, dispatches and scales jobs
# in every namespace, follows deployments and reads task logs to diagnose a
# failed release, restarts allocations. Cannot exec into tasks, read task
# files or variables, or change nodes, pools, agents or the operator state.

namespace "*" {
  policy       = "read"
  capabilities = ["submit-job", "dispatch-job", "scale-job", "read-logs", "alloc-lifecycle"]
}

node_pool "*" {
  policy = "read"
}

node {
  policy = "read"
}
