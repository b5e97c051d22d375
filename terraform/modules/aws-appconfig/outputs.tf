output "veltrix_url" {
  description = "The store URL for veltrix.Client: appconfig://APPLICATION_ID/ENVIRONMENT_ID/PROFILE_ID?region=REGION plus veltrix_url_options."
  value       = local.veltrix_url
  depends_on  = [aws_appconfig_deployment.this]
}

output "application_id" {
  description = "Id of the AppConfig application."
  value       = aws_appconfig_application.this.id
}

output "environment_id" {
  description = "Id of the AppConfig environment."
  value       = aws_appconfig_environment.this.environment_id
}

output "configuration_profile_id" {
  description = "Id of the configuration profile."
  value       = aws_appconfig_configuration_profile.this.configuration_profile_id
}

output "configuration_arn" {
  description = "ARN of the application/environment/profile triple that the read policy grants."
  value       = local.configuration_arn
}

output "hosted_version_number" {
  description = "Number of the hosted configuration version Terraform deployed."
  value       = aws_appconfig_hosted_configuration_version.this.version_number
}

output "deployment_number" {
  description = "Number of the deployment of that version."
  value       = aws_appconfig_deployment.this.deployment_number
}

output "deployment_strategy_id" {
  description = "Id of the deployment strategy used for Terraform's deployments (pass it as strategy= to Veltrix writes to use it too)."
  value       = aws_appconfig_deployment_strategy.this.id
}

output "read_policy_arn" {
  description = "ARN of the least-privilege read policy (null when create_read_policy is false)."
  value       = one(aws_iam_policy.read[*].arn)
}

output "read_policy_json" {
  description = "The read policy document, for attaching inline or to a permissions boundary."
  value       = data.aws_iam_policy_document.read.json
}
