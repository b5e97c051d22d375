variable "project_id" {
  description = "GCP project that holds the secrets."
  type        = string
}

variable "prefix" {
  description = "Veltrix key prefix the secrets live under, e.g. \"app/prod\" (\"\" for none). Secret ids encode the full key as Veltrix does: _ -> __, / -> _s, . -> _d."
  type        = string
  default     = ""

  validation {
    condition     = var.prefix == "" || can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.prefix))
    error_message = "prefix must be empty or segments of [A-Za-z0-9._-] joined by /."
  }
}

variable "secrets" {
  description = "Initial secrets: Veltrix key (relative to prefix) -> value. Each becomes a secret with its first version; Terraform ignores versions Veltrix adds later."
  type        = map(string)
  default     = {}
  sensitive   = true
}

variable "labels" {
  description = "Extra labels for every secret (Veltrix adds managed-by and veltrix-top itself)."
  type        = map(string)
  default     = {}
}

variable "replica_locations" {
  description = "Regions for user-managed replication, e.g. [\"europe-west1\", \"europe-west4\"]; empty means automatic replication."
  type        = list(string)
  default     = []
}

variable "kms_key_name" {
  description = "Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K) encrypting the secrets and the Pub/Sub topic; null uses Google-managed keys. With user-managed replication the key must be in each replica's region, so give one per region in replica_kms_key_names instead."
  type        = string
  default     = null
}

variable "replica_kms_key_names" {
  description = "Cloud KMS key per replica location (location -> key name) for user-managed replication."
  type        = map(string)
  default     = {}
}

variable "service_account_email" {
  description = "Service account granted access; null creates one named by service_account_id."
  type        = string
  default     = null
}

variable "service_account_id" {
  description = "account_id of the service account created when service_account_email is null (6-30 characters)."
  type        = string
  default     = "veltrix-reader"
}

variable "grant_list" {
  description = "Also grant roles/secretmanager.viewer on the project so Veltrix can list and watch (ListSecrets is a project-level permission)."
  type        = bool
  default     = true
}

variable "notification_topic" {
  description = "Name of a Pub/Sub topic to create for secret change notifications (SECRET_VERSION_ADD, ...); null for none."
  type        = string
  default     = null
}

variable "veltrix_url_options" {
  description = "Extra query options appended to veltrix_url, e.g. { poll_interval = \"30\" } (see docs/stores/gcp-secret-manager.md)."
  type        = map(string)
  default     = {}
}
