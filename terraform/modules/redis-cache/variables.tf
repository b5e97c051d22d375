variable "name" {
  description = "Replication group id (1-40 characters: lowercase letters, digits, hyphens)."
  type        = string
  default     = "veltrix-cache"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,39}$", var.name))
    error_message = "name must start with a letter and hold 1-40 lowercase letters, digits or hyphens."
  }
}

variable "vpc_id" {
  description = "VPC the cache runs in."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the cache nodes (two or more availability zones for failover)."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "subnet_ids must list at least two subnets."
  }
}

variable "client_cidr_blocks" {
  description = "CIDR blocks of the clients allowed to reach the Redis port; nothing else can."
  type        = list(string)
  default     = []
}

variable "client_security_group_ids" {
  description = "Security groups of the clients allowed to reach the Redis port."
  type        = list(string)
  default     = []
}

variable "auth_token" {
  description = "Redis AUTH token (16-128 printable characters, no spaces, \" / or @). Ends up in the sensitive veltrix_cache_url output."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.auth_token) >= 16 && length(var.auth_token) <= 128 && !can(regex("[\\s\"/@]", var.auth_token))
    error_message = "auth_token must be 16-128 characters without whitespace, \", / or @."
  }
}

variable "node_type" {
  description = "ElastiCache node type."
  type        = string
  default     = "cache.t4g.small"
}

variable "replicas" {
  description = "Read replicas besides the primary (at least 1 for automatic failover)."
  type        = number
  default     = 1

  validation {
    condition     = var.replicas >= 1 && var.replicas <= 5
    error_message = "replicas must be between 1 and 5."
  }
}

variable "engine_version" {
  description = "Redis engine version."
  type        = string
  default     = "7.1"
}

variable "port" {
  description = "Redis port."
  type        = number
  default     = 6379
}

variable "kms_key_arn" {
  description = "KMS key for encryption at rest; null creates one."
  type        = string
  default     = null
}

variable "snapshot_retention_limit" {
  description = "Days of automatic snapshots to keep (0 disables them: the cache holds nothing that cannot be re-read from the store)."
  type        = number
  default     = 1
}

variable "database" {
  description = "Redis database number in the Veltrix URLs."
  type        = number
  default     = 0
}

variable "tags" {
  description = "Tags applied to every resource that takes tags."
  type        = map(string)
  default     = {}
}
