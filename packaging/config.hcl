# nomad-bootstrapd agent configuration.
#
# Settings are read from the built-in defaults, then this file, then the
# environment (NOMAD_BOOTSTRAPD_TOKEN), then command-line flags; each layer
# overrides the one before. Unknown keys are errors. Every setting below
# except token_file shows its default and is commented out.
#
# To join a cluster: put the join token in /etc/nomad-bootstrapd/token with
# mode 0600 (the server token from `nomad-bootstrapd token create` on machines
# that may be servers, a client token from `nomad-bootstrapd token client` on
# machines that only run workloads), set `join` below, then run
#   systemctl enable --now nomad-bootstrapd

# File holding the join token. A warning is logged when other users can read it.
token_file = "/etc/nomad-bootstrapd/token"

# The join token itself. Prefer token_file: this file is readable by all users.
# token = ""

# Seeds of machines in the cluster, for instance two or three machines that
# come up first: "ip", "ip:port", a host name, a DNS SRV name
# ("dns+srv://_nomad-bootstrapd._tcp.example.com"), or "provider=mdns" for
# the cluster's machines on this network segment; names are looked up again
# at each join. A machine may list itself.
# join = ["10.0.0.5", "10.0.0.6"]

# Address to listen on: an IP or a go-sockaddr template. Default: the
# advertise address.
# bind = ""

# Address peers reach this machine at: an IP or a go-sockaddr template that
# yields exactly one address, e.g. "{{ GetInterfaceIP \"eth0\" }}".
# advertise = "{{ GetPrivateIP }}"

# Gossip port, TCP and UDP.
# port = 4650

# Unique node name; also the Nomad agent name. Default: the hostname.
# name = ""

# auto, server (preferred as a Nomad server) or client (never a server).
# role = "auto"

# Nomad node pool of this machine's client: warm (long-running services),
# batch (short jobs), special (critical work) or a name of your own.
# pool = "default"

# Failure zone, e.g. "eu-west-1a"; servers are spread across zones.
# zone = ""

# Nomad datacenter.
# datacenter = "dc1"

# Nomad region; every machine of the cluster must agree.
# region = "global"

# Number of Nomad servers: 1, 3 or 5; every machine of the cluster must agree.
# expect = 3

# Machines that must be alive before servers are elected. Default: expect.
# Set it to a majority of the machines you start, so that two halves of a
# partitioned network cannot both elect.
# min_members = 3

# How long membership must be stable before servers are elected.
# settle = "3s"

# Number of machines started together for the first election (an
# autoscaling group's desired size, say). Once that many are alive they
# elect at once instead of waiting for settle; min_members then defaults to
# a majority of them. 0: unknown.
# bootstrap_size = 0

# How Nomad is run: systemd (as nomad.service), process (as a child of this
# agent) or none (configuration only).
# supervise = "systemd"

# Path of the nomad binary.
# nomad = "/usr/bin/nomad"

# debug, info, warn or error.
# log_level = "info"

# host:port of the agent's Prometheus endpoint; "" turns it off.
# metrics_addr = "127.0.0.1:4652"

# Keep Nomad servers from also running a client. A machine whose role is
# "server" never runs a client either way.
# dedicated_servers = false

# Enable Nomad's raw_exec driver on clients. Its tasks run unisolated as
# root: only for trusted jobs.
# raw_exec = false

# Put this client into the Nomad node pool named by `pool`, so that only jobs
# naming that node_pool run on it. Off: the client is in Nomad's default
# pool, where every job that names no pool runs, and jobs choose a pool with
# node_class or constraint { attribute = "${meta.pool}" value = "warm" }.
# isolate_pools = false

# Lifetime of the certificates the CA holder issues; each is renewed at half
# of it. Nomad checks no revocation list, so this is how long a lost
# certificate keeps working; half of it is how long the CA may be out.
# cert_lifetime = "24h"

# How often the CA holder rotates the gossip keys, Nomad's (server.encrypt,
# through Nomad's keyring API) and the agents' own, without restarting
# anything; 0 rotates them only on command (nomad-bootstrapd keys rotate).
# gossip_key_rotation = "720h"

# How much of the cluster CA's lifetime, in percent (50-99), passes before the
# CA holder rotates it (nomad-bootstrapd ca rotate, Nomad running);
# 0 rotates it only on command. The CA lasts five years: 80 rotates it after four.
# ca_rotation_percent = 80

# How often each Nomad server saves a snapshot of Nomad's state and keyring into
# /var/lib/nomad-bootstrapd/snapshots/ (at least 30s; 0 saves only on command,
# nomad-bootstrapd snapshot save), and how many of them it keeps.
# snapshot_interval = "1h"
# snapshot_retain = 24

# With supervise = "process": a directory of versioned nomad binaries
# (nomad-1.6.3, ...) that a rolling upgrade (nomad-bootstrapd upgrade nomad)
# takes the next version from. Under systemd the package manager installs it.
# nomad_dir = ""

# How long the CA holder must be down before the next live server signs
# certificates with the escrowed CA key.
# ca_failover_after = "2m"

# On the servers, when nodes reach them through NAT: the CA holder then
# accepts a certificate request from another address than the requesting
# member's gossip address (the request is still signed by its identity key).
# behind_nat = false

# How long a server must be down before the other servers replace it with a
# live machine that is not a server.
# server_replace_after = "10m"

# An intermediate CA signed by your offline root (see `nomad-bootstrapd ca
# csr -help`), on the machines that may become servers. Without it the CA
# holder makes the cluster's CA itself.
# ca {
#   cert_file  = "/etc/nomad-bootstrapd/ca/intermediate.pem"
#   key_file   = "/etc/nomad-bootstrapd/ca/intermediate-key.pem"
#   chain_file = "/etc/nomad-bootstrapd/ca/root.pem"
# }
