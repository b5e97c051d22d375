output "veltrix_url" {
  description = "The store URL for veltrix.Client: ssm:///PATH?region=...&secure=true&key_id=KMS_KEY_ARN (writes through Veltrix are SecureStrings under the module's key)."
  value       = local.veltrix_url
}

output "path" {
  description = "The parameter path (without a trailing slash)."
  value       = local.path
}

output "kms_key_arn" {
  description = "ARN of the KMS key encrypting the SecureString parameters."
  value       = aws_kms_key.this.arn
}

output "kms_alias" {
  description = "Alias of that key."
  value       = aws_kms_alias.this.name
}

output "parameter_names" {
  description = "Full names of the parameters Terraform created."
  value       = sort([for p in aws_ssm_parameter.this : p.name])
}

output "read_policy_arn" {
  description = "ARN of the read policy (null when create_read_policy is false)."
  value       = one(aws_iam_policy.read[*].arn)
}

output "write_policy_arn" {
  description = "ARN of the write policy (null when create_write_policy is false)."
  value       = one(aws_iam_policy.write[*].arn)
}
