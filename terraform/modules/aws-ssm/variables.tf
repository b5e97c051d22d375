variable "path" {
  description = "Parameter path that Veltrix keys live under, e.g. \"/app/prod\" (keys payments/timeout_ms -> /app/prod/payments/timeout_ms). Must start with / and must not start with /aws or /ssm."
  type        = string

  validation {
    condition     = can(regex("^(/[A-Za-z0-9._-]+)+$", var.path)) && !can(regex("^/(?i:aws|ssm)", var.path))
    error_message = "path must look like /segment[/segment...] (segments of [A-Za-z0-9._-]) and must not start with /aws or /ssm."
  }
}

variable "parameters" {
  description = "Initial parameters: Veltrix key (relative to path) -> value. Stored as SecureString encrypted with the module's KMS key; Terraform ignores later changes made through Veltrix."
  type        = map(string)
  default     = {}
  sensitive   = true
}

variable "tier" {
  description = "Parameter tier: Standard (4 KB values) or Advanced (8 KB values, charged)."
  type        = string
  default     = "Standard"

  validation {
    condition     = contains(["Standard", "Advanced", "Intelligent-Tiering"], var.tier)
    error_message = "tier must be Standard, Advanced or Intelligent-Tiering."
  }
}

variable "kms_deletion_window_in_days" {
  description = "Waiting period (7-30 days) before the KMS key is deleted after destroy."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_in_days >= 7 && var.kms_deletion_window_in_days <= 30
    error_message = "kms_deletion_window_in_days must be between 7 and 30."
  }
}

variable "key_administrator_arns" {
  description = "IAM principals allowed to administer the KMS key besides the account root (which always keeps access, as AWS recommends)."
  type        = list(string)
  default     = []
}

variable "create_read_policy" {
  description = "Create an IAM policy allowing reads of parameters under path (and kms:Decrypt through SSM only)."
  type        = bool
  default     = true
}

variable "create_write_policy" {
  description = "Also create a policy allowing Veltrix writes (PutParameter/DeleteParameter under path, kms:Encrypt/GenerateDataKey through SSM)."
  type        = bool
  default     = false
}

variable "policy_name_prefix" {
  description = "Prefix of the IAM policy names; null derives one from path."
  type        = string
  default     = null
}

variable "veltrix_url_options" {
  description = "Extra query options appended to veltrix_url, e.g. { poll_interval = \"30\" } (see docs/stores/ssm.md)."
  type        = map(string)
  default     = {}
}

variable "tags" {
  description = "Tags applied to every resource that takes tags."
  type        = map(string)
  default     = {}
}
