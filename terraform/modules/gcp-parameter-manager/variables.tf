variable "project_id" {
  description = "GCP project that holds the parameters (and, by default, the referenced secrets)."
  type        = string
}

variable "prefix" {
  description = "Veltrix key prefix the parameters live under, e.g. \"app/prod\" (\"\" for none). Parameter ids encode prefix/name as Veltrix does: _ -> __, / -> _s, . -> _d (at most 63 characters)."
  type        = string
  default     = ""

  validation {
    condition     = var.prefix == "" || can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.prefix))
    error_message = "prefix must be empty or segments of [A-Za-z0-9._-] joined by /."
  }
}

variable "parameters" {
  description = "Parameters to create: name (the first Veltrix key segment below prefix) -> { format = UNFORMATTED|JSON|YAML, data = first version's payload }. The first version is v1; Terraform ignores the versions Veltrix adds later. JSON/YAML data may hold __REF__(//secretmanager.googleapis.com/...) secret references."
  type = map(object({
    format = string
    data   = string
  }))
  default = {}

  validation {
    condition     = alltrue([for p in values(var.parameters) : contains(["UNFORMATTED", "JSON", "YAML"], p.format)])
    error_message = "format must be UNFORMATTED, JSON or YAML."
  }
  validation {
    condition     = alltrue([for name in keys(var.parameters) : can(regex("^[A-Za-z0-9._-]+$", name))])
    error_message = "parameter names are single Veltrix key segments ([A-Za-z0-9._-]+)."
  }
}

variable "referenced_secrets" {
  description = "Secret Manager secrets (secret ids in project_id, or full projects/P/secrets/S names) the parameters reference; each parameter's own principal (policy_member) gets roles/secretmanager.secretAccessor on them so the service can render the references."
  type        = list(string)
  default     = []
}

variable "labels" {
  description = "Extra labels for every parameter (Veltrix adds managed-by=veltrix itself)."
  type        = map(string)
  default     = {}
}

variable "kms_key_name" {
  description = "Cloud KMS key (projects/P/locations/global/keyRings/R/cryptoKeys/K) encrypting the parameter versions; null uses Google-managed keys."
  type        = string
  default     = null
}

variable "service_account_email" {
  description = "Service account of the application reading the parameters; null creates one named by service_account_id."
  type        = string
  default     = null
}

variable "service_account_id" {
  description = "account_id of the service account created when service_account_email is null (6-30 characters)."
  type        = string
  default     = "veltrix-pm-reader"
}

variable "grant_write" {
  description = "Also grant roles/parametermanager.parameterVersionManager so the application can write (new versions) through Veltrix."
  type        = bool
  default     = false
}

variable "veltrix_url_options" {
  description = "Extra query options appended to veltrix_url, e.g. { poll_interval = \"30\" } (see docs/stores/gcp-parameter-manager.md)."
  type        = map(string)
  default     = {}
}
