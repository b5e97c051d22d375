variable "namespace" {
  description = "Namespace of the ConfigMaps, the Secrets and the ServiceAccount. A namespace of its own is best: list and watch cannot be limited to named objects (see README)."
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
  description = "URL prefix of the k8s:// store, e.g. \"app\": the objects are named after it (vx-app-3<first key segment>)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.prefix))
    error_message = "prefix must be segments of [A-Za-z0-9._-] joined by /, without leading or trailing slash."
  }
}

variable "values" {
  description = "Initial values: Veltrix key (below prefix, e.g. \"payments/timeout_ms\") -> value. Keys sharing a first segment go into one ConfigMap, laid out as the k8s:// store lays them out. Terraform ignores later changes to the data: values belong to Veltrix once created."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for key in keys(var.values) : can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", key))])
    error_message = "keys must be segments of [A-Za-z0-9._-] joined by /."
  }
}

variable "secret_values" {
  description = "Initial secret values, in Secrets laid out the same way (read with veltrix_secret_url). A key may not be in both values and secret_values."
  type        = map(string)
  default     = {}
  sensitive   = true
}

variable "access" {
  description = "What the ServiceAccount may do: read (get the named objects), watch (read plus list and watch the namespace's ConfigMaps, and its Secrets when there are secret values) or write (watch plus update, patch and delete of the named objects and create, for keys with a new first segment)."
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
  description = "Directory under which a pod mounts the objects as volumes (ROOT/configmaps/NAME, ROOT/secrets/NAME); used to build veltrix_volume_url."
  type        = string
  default     = "/etc/veltrix"

  validation {
    condition     = startswith(var.volume_mount_root, "/") && !endswith(var.volume_mount_root, "/")
    error_message = "volume_mount_root must be an absolute path without a trailing slash."
  }
}

variable "labels" {
  description = "Labels added to every object the module creates (the two labels the k8s:// store selects on always win)."
  type        = map(string)
  default     = {}
}

variable "veltrix_url_options" {
  description = "Extra query options appended to veltrix_url and veltrix_secret_url (the k8s:// store's options, see docs/stores/kubernetes.md)."
  type        = map(string)
  default     = {}
}

variable "volume_url_options" {
  description = "Extra query options appended to veltrix_volume_url, e.g. { poll_interval = \"2\" } (see docs/stores/kubernetes-volume.md)."
  type        = map(string)
  default     = {}
}
