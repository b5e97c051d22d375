variable "project_id" {
  description = "GCP project for the secrets."
  type        = string
}

variable "db_password" {
  description = "Example secret stored as db/password."
  type        = string
  sensitive   = true
}

variable "api_key" {
  description = "Example secret stored as api/key."
  type        = string
  sensitive   = true
}
