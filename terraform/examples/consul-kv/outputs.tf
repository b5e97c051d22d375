output "veltrix_url" {
  description = "Store URL for veltrix.Client / veltrix.Client.from_terraform."
  value       = module.kv.veltrix_url
}

output "token_secret_id" {
  description = "Give it to the services as CONSUL_HTTP_TOKEN."
  value       = module.kv.token_secret_id
  sensitive   = true
}
