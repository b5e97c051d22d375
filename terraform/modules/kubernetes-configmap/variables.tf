variable "namespace" {
  description = "Namespace of the ConfigMaps, the Secret and the ServiceAccount."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", var.namespace)) && length(var.namespace) <= 63 && var.namespace != "default"
    error_message = "namespace must be a DNS-1123 label (lowercase letters, digits and -, at most 63 characters) other than \"default\"."
  }
}

variable "create_namespace" {
  description = "Create the namespace (true), or use one that already exists (false)."
  type        = bool
  default     = false
}

variable "prefix" {
  description = "Veltrix key prefix of the API store URL (k8s://NAMESPACE/PREFIX) and of the volume URL, e.g. \"app\"."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.prefix)) && !can(regex("(^|/)\\.\\.", var.prefix))
    error_message = "prefix must be segments of [A-Za-z0-9._-] joined by /, none starting with \"..\"."
  }
}

variable "config_maps" {
  description = "ConfigMaps to create with their initial values: ConfigMap name -> { data key -> value }. Data keys are [-._a-zA-Z0-9]+ (Kubernetes' rule); Terraform ignores later changes to data, which belongs to Veltrix once created."
  type        = map(map(string))

  validation {
    condition = alltrue([
      for name, data in var.config_maps :
      can(regex("^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", name)) && length(name) <= 253 &&
      alltrue([for key in keys(data) : can(regex("^[-._a-zA-Z0-9]+$", key)) && !startswith(key, "..") && length(key) <= 253])
    ])
    error_message = "ConfigMap names must be DNS-1123 subdomains; data keys must match [-._a-zA-Z0-9]+, not start with \"..\", at most 253 characters."
  }
}

variable "secret_name" {
  description = "Name of a Secret to create for secret values; null creates none."
  type        = string
  default     = null

  validation {
    condition     = var.secret_name == null || can(regex("^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", var.secret_name))
    error_message = "secret_name must be a DNS-1123 subdomain."
  }
}

variable "secret_data" {
  description = "Initial values of the Secret: data key -> value (plain text; the provider base64-encodes it). Ignored without secret_name."
  type        = map(string)
  default     = {}
  sensitive   = true
}

variable "access" {
  description = "What the ServiceAccount may do with exactly these objects (resourceNames): read (get), watch (get, list, watch) or write (watch plus update and patch; never create or delete)."
  type        = string
  default     = "watch"

  validation {
    condition     = contains(["read", "watch", "write"], var.access)
    error_message = "access must be read, watch or write."
  }
}

variable "service_account_name" {
  description = "Name of the ServiceAccount (and of its Role and RoleBinding) that Veltrix runs as."
  type        = string
  default     = "veltrix"
}

variable "volume_mount_root" {
  description = "Directory under which a pod mounts each object as a volume (ROOT/NAME); used to build veltrix_volume_url."
  type        = string
  default     = "/etc/veltrix"

  validation {
    condition     = startswith(var.volume_mount_root, "/") && !endswith(var.volume_mount_root, "/")
    error_message = "volume_mount_root must be an absolute path without a trailing slash."
  }
}

variable "labels" {
  description = "Labels added to every object the module creates."
  type        = map(string)
  default     = {}
}

variable "veltrix_url_options" {
  description = "Extra query options appended to veltrix_url (the API store's options)."
  type        = map(string)
  default     = {}
}

variable "volume_url_options" {
  description = "Extra query options appended to veltrix_volume_url, e.g. { poll_interval = \"2\" } (see docs/stores/kubernetes-volume.md)."
  type        = map(string)
  default     = {}
}
