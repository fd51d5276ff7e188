storage "raft" {
  path    = "/opt/vault/data"
  node_id = "h1"

}
listener "tcp" {
  address     = "0.0.0.0:8200"
  tls_disable = false

}
telemetry {
  disable_hostname = true

}
ui = true
