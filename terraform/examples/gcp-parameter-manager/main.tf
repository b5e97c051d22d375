provider "google" {
  project = var.project_id
}

module "config" {
  source = "../../modules/gcp-parameter-manager"

  project_id = var.project_id
  prefix     = "veltrix-example"
  parameters = {
    payments = {
      format = "JSON"
      data = jsonencode({
        timeout_ms = 500
        db = {
          host     = "db.internal"
          password = "__REF__(//secretmanager.googleapis.com/projects/${var.project_id}/secrets/${var.db_password_secret}/versions/latest)"
        }
      })
    }
    banner = {
      format = "UNFORMATTED"
      data   = "Welcome"
    }
  }
  referenced_secrets = [var.db_password_secret]
  labels             = { "managed-by-terraform" = "true" }
}
