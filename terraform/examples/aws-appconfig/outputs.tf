output "veltrix_url" {
  description = "Store URL for veltrix.Client / veltrix.Client.from_terraform."
  value       = module.appconfig.veltrix_url
}

output "read_policy_arn" {
  description = "IAM policy to attach to the roles of services that read this configuration."
  value       = module.appconfig.read_policy_arn
}

output "deployment_number" {
  description = "Number of the deployment Terraform started."
  value       = module.appconfig.deployment_number
}
