output "veltrix_url" {
  description = "API store URL for veltrix.Client / veltrix.Client.from_terraform."
  value       = module.config.veltrix_url
}

output "veltrix_secret_url" {
  description = "API store URL of the Secrets (kind=secret)."
  value       = module.config.veltrix_secret_url
}

output "veltrix_volume_url" {
  description = "Mounted-volume store URL, for pods that mount the objects at volume_mounts."
  value       = module.config.veltrix_volume_url
}

output "volume_mounts" {
  description = "The objects a pod mounts for veltrix_volume_url, and where."
  value       = module.config.volume_mounts
}

output "service_account_name" {
  description = "serviceAccountName for the pods."
  value       = module.config.service_account_name
}
