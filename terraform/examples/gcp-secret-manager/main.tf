provider "google" {
  project = var.project_id
}

module "secrets" {
  source = "../../modules/gcp-secret-manager"

  project_id = var.project_id
  prefix     = "veltrix-example/dev"
  secrets = {
    "db/password" = var.db_password
    "api/key"     = var.api_key
  }
  labels             = { "managed-by-terraform" = "true" }
  notification_topic = "veltrix-example-secret-changes"
}
