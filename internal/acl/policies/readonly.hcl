# readonly: read-only audit. Sees jobs, allocations, deployments and CSI
# volumes in every namespace, nodes, node pools, agents, server health,
# autopilot and scheduler configuration, keyring metadata and CSI plugins;
# lists variable paths without reading their values. Cannot read task logs or
# allocation files, and cannot change anything. (Raft peers are for the
# management token only.)

namespace "*" {
  policy = "read"

  variables {
    path "*" {
      capabilities = ["list"]
    }
  }
}

node_pool "*" {
  policy = "read"
}

node {
  policy = "read"
}

agent {
  policy = "read"
}

operator {
  policy = "read"
}

quota {
  policy = "read"
}

plugin {
  policy = "read"
}
