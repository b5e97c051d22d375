variable "project_id" {
  description = "GCP project for the parameters and the referenced secret."
  type        = string
}

variable "db_password_secret" {
  description = "Id of an existing Secret Manager secret holding the database password (referenced, never copied)."
  type        = string
  default     = "db-password"
}
