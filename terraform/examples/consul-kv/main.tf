# The provider's token needs acl = "write" (management); CONSUL_HTTP_TOKEN works too.
provider "consul" {
  address    = var.consul_address
  scheme     = var.consul_scheme
  datacenter = var.datacenter
}

module "kv" {
  source = "../../modules/consul-kv"

  prefix         = "veltrix-example/dev"
  consul_address = var.consul_address
  consul_scheme  = var.consul_scheme
  datacenter     = var.datacenter
  access         = "write"
  seed = {
    "payments/timeout_ms" = "500"
    "payments/retries"    = "3"
  }
}
