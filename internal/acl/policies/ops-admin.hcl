# ops-admin: day-to-day operations. Everything in every namespace, including
# exec into tasks and on their nodes and all variables; drains and eligibility
# of nodes; node pools; host volumes; agents (join, monitor); autopilot and
# scheduler configuration. It is not a management token: ACL policies and
# tokens (and their secrets), Raft peers and snapshots, which hold every
# token's secret, stay with the management token (SECURITY.md has the table,
# checked against the real Nomad).

namespace "*" {
  policy       = "write"
  capabilities = ["alloc-node-exec"]

  variables {
    path "*" {
      capabilities = ["write", "read", "list", "destroy"]
    }
  }
}

node_pool "*" {
  policy = "write"
}

host_volume "*" {
  policy = "write"
}

node {
  policy = "write"
}

agent {
  policy = "write"
}

operator {
  policy = "write"
}

quota {
  policy = "write"
}

plugin {
  policy = "read"
}
