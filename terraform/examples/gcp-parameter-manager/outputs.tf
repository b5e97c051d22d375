output "veltrix_url" {
  description = "Store URL for veltrix.Client / veltrix.Client.from_terraform."
  value       = module.config.veltrix_url
}

output "service_account_email" {
  description = "Run the services as this account (or impersonate it) to read the parameters."
  value       = module.config.service_account_email
}
