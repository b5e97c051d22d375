output "veltrix_url" {
  description = "The store URL for veltrix.Client: gcpsm://PROJECT[/PREFIX][?options]. Credentials come from Application Default Credentials of service_account_email."
  value       = local.veltrix_url
}

output "secret_ids" {
  description = "Veltrix key -> secret id of the secrets Terraform created."
  value       = local.secret_ids
}

output "service_account_email" {
  description = "Service account holding roles/secretmanager.secretAccessor on the prefix."
  value       = local.service_account_email
}

output "notification_topic_id" {
  description = "Id of the Pub/Sub topic receiving change notifications (null without one)."
  value       = one(google_pubsub_topic.notifications[*].id)
}
