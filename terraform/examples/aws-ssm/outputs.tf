output "veltrix_url" {
  description = "Store URL for veltrix.Client / veltrix.Client.from_terraform."
  value       = module.ssm.veltrix_url
}

output "read_policy_arn" {
  description = "IAM policy for services that read the parameters."
  value       = module.ssm.read_policy_arn
}

output "write_policy_arn" {
  description = "IAM policy for tools that write them through Veltrix."
  value       = module.ssm.write_policy_arn
}
