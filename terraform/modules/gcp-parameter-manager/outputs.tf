output "veltrix_url" {
  description = "The store URL for veltrix.Client: gcppm://PROJECT[/PREFIX]?location=global[&options]. Credentials come from Application Default Credentials of service_account_email."
  value       = local.veltrix_url
}

output "parameter_ids" {
  description = "Parameter name -> parameter id of the parameters Terraform created."
  value       = local.parameter_ids
}

output "parameter_principals" {
  description = "Parameter name -> the parameter's IAM principal (policy_member uid principal) that renders its secret references."
  value       = { for name, parameter in google_parameter_manager_parameter.this : name => parameter.policy_member[0].iam_policy_uid_principal }
}

output "service_account_email" {
  description = "Service account holding the Parameter Manager viewer and accessor roles."
  value       = local.service_account_email
}
