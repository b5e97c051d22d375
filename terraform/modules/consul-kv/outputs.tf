output "veltrix_url" {
  description = "The store URL for veltrix.Client: consul://ADDRESS/PREFIX?scheme=...&dc=... The token is not in it: give services token_secret_id as CONSUL_HTTP_TOKEN."
  value       = local.veltrix_url
}

output "prefix" {
  description = "The KV prefix."
  value       = var.prefix
}

output "policy_name" {
  description = "Name of the ACL policy scoped to the prefix."
  value       = consul_acl_policy.this.name
}

output "token_accessor_id" {
  description = "Accessor id of the ACL token (safe to show)."
  value       = consul_acl_token.this.id
}

output "token_secret_id" {
  description = "The ACL token secret for CONSUL_HTTP_TOKEN."
  value       = data.consul_acl_token_secret_id.this.secret_id
  sensitive   = true
}

output "seeded_keys" {
  description = "Veltrix keys Terraform created under the prefix."
  value       = sort(keys(var.seed))
}
