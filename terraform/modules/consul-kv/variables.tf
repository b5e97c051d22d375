variable "prefix" {
  description = "KV prefix that Veltrix keys live under, without leading or trailing slash, e.g. \"app/prod\"."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.prefix))
    error_message = "prefix must be segments of [A-Za-z0-9._-] joined by /, without leading or trailing slash."
  }
}

variable "consul_address" {
  description = "host:port at which services reach the Consul HTTP API (goes into veltrix_url)."
  type        = string
}

variable "consul_scheme" {
  description = "Scheme services use to reach Consul: https (recommended) or http."
  type        = string
  default     = "https"

  validation {
    condition     = contains(["http", "https"], var.consul_scheme)
    error_message = "consul_scheme must be http or https."
  }
}

variable "datacenter" {
  description = "Datacenter the keys, policy and token belong to; null uses the agent's."
  type        = string
  default     = null
}

variable "access" {
  description = "What the token may do under the prefix: read (default), list (read plus key listing when acl.enable_key_list_policy is on) or write (Veltrix puts and deletes)."
  type        = string
  default     = "read"

  validation {
    condition     = contains(["read", "list", "write"], var.access)
    error_message = "access must be read, list or write."
  }
}

variable "token_description" {
  description = "Description of the ACL token; null derives one from the prefix."
  type        = string
  default     = null
}

variable "seed" {
  description = "Keys created under the prefix: Veltrix key (relative to prefix) -> value. Terraform owns these keys: a later apply puts back their values and destroy deletes them; keys Veltrix adds are left alone."
  type        = map(string)
  default     = {}
}

variable "veltrix_url_options" {
  description = "Extra query options appended to veltrix_url, e.g. { consistency = \"consistent\" } (see docs/stores/consul.md)."
  type        = map(string)
  default     = {}
}
