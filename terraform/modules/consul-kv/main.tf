locals {
  slug = replace(var.prefix, "/", "-")

  # Consul ACL rules (HCL) granting access to the prefix subtree only.
  rules = <<-RULES
    key_prefix "${var.prefix}/" {
      policy = "${var.access}"
    }
  RULES

  url_options = merge(
    { scheme = var.consul_scheme },
    var.datacenter == null ? {} : { dc = var.datacenter },
    var.veltrix_url_options,
  )
  url_query   = join("&", [for name, value in local.url_options : "${name}=${urlencode(value)}"])
  veltrix_url = "consul://${var.consul_address}/${var.prefix}?${local.url_query}"
}

resource "consul_acl_policy" "this" {
  name        = "veltrix-${local.slug}-${var.access}"
  description = "Veltrix: ${var.access} access to KV keys under ${var.prefix}/"
  rules       = local.rules
  datacenters = var.datacenter == null ? null : [var.datacenter]
}

resource "consul_acl_token" "this" {
  description = coalesce(var.token_description, "Veltrix client for ${var.prefix}/ (${var.access})")
  policies    = [consul_acl_policy.this.name]
  local       = false
}

data "consul_acl_token_secret_id" "this" {
  accessor_id = consul_acl_token.this.id
}

resource "consul_keys" "seed" {
  count      = length(var.seed) > 0 ? 1 : 0
  datacenter = var.datacenter

  dynamic "key" {
    for_each = var.seed
    content {
      path   = "${var.prefix}/${key.key}"
      value  = key.value
      delete = true
    }
  }
}
