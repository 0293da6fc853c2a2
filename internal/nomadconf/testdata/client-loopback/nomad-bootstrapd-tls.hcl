# Managed by nomad-bootstrapd: changes are overwritten. Put your own settings in another file of this directory.

# Mutual TLS on HTTP and RPC: every caller, the CLI included, needs a cluster certificate.
tls {
  http                   = true
  rpc                    = true
  ca_file                = "/etc/nomad.d/tls/ca.pem"
  cert_file              = "/etc/nomad.d/tls/agent.pem"
  key_file               = "/etc/nomad.d/tls/agent-key.pem"
  verify_server_hostname = true
  verify_https_client    = true
}
