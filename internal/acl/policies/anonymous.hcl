# anonymous: what a request without a token may do. Nomad gives every
# tokenless request the policy named "anonymous".
#
# Minimal observability for dashboards and status pages: the names and status
# of the jobs in the default namespace, the client nodes and the server
# members. No job specifications (templates and env can hold secrets), no
# logs, no files, no variables, and nothing that changes the cluster.
# Prometheus scrapes /v1/metrics, which needs no token at all.

namespace "default" {
  capabilities = ["list-jobs"]
}

node {
  policy = "read"
}
