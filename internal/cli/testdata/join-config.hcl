# Written by `nomad-bootstrapd join`; running it again rewrites this file.
token_file           = "/etc/nomad-bootstrapd/token"
join                 = ["10.0.0.5", "10.0.0.6"]
pool                 = "batch"
zone                 = "b"
expect               = 3
settle               = "1m30s"
server_replace_after = "30m0s"
raw_exec             = true
