# envoke policy --vault --watch
# sys/internal/ui/mounts/PATH tells envoke which engine serves PATH; Vault answers it for
# any token that may use something under the mount, so those rules only make it explicit.
# Rules marked ASSUMED guess the engine: envoke could not ask the server.
# Logging in at auth/kubernetes/login (kubernetes) needs no rule: Vault checks no policy on a
# login path. The token it gives needs the rules below, as this policy or the default one.

path "auth/token/renew-self" {
  # keep envoke's own login alive
  capabilities = ["update"]
}

path "auth/token/revoke-self" {
  # revoke envoke's own login when it exits
  capabilities = ["update"]
}

path "secret/data/billing/db" {
  # vault://secret/billing/db: ASSUMED KV v2 at secret/; on KV v1 or another engine the rule is path "secret/billing/db"
  capabilities = ["read"]
}

path "secret/data/billing/stripe" {
  # vault://secret/billing/stripe: ASSUMED KV v2 at secret/; on KV v1 or another engine the rule is path "secret/billing/stripe"
  capabilities = ["read"]
}

path "secret/data/billing/tls" {
  # vault://secret/billing/tls: ASSUMED KV v2 at secret/; on KV v1 or another engine the rule is path "secret/billing/tls"
  capabilities = ["read"]
}

path "secret/metadata/billing/db" {
  # the current version of secret/billing/db, to watch it
  capabilities = ["read"]
}

path "secret/metadata/billing/stripe" {
  # the current version of secret/billing/stripe, to watch it
  capabilities = ["read"]
}

path "secret/metadata/billing/tls" {
  # the current version of secret/billing/tls, to watch it
  capabilities = ["read"]
}

path "sys/internal/ui/mounts/secret/billing/db" {
  # which engine serves secret/billing/db
  capabilities = ["read"]
}

path "sys/internal/ui/mounts/secret/billing/stripe" {
  # which engine serves secret/billing/stripe
  capabilities = ["read"]
}

path "sys/internal/ui/mounts/secret/billing/tls" {
  # which engine serves secret/billing/tls
  capabilities = ["read"]
}
