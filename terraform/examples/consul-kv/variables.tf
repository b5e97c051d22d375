variable "consul_address" {
  description = "host:port of the Consul HTTP API."
  type        = string
  default     = "127.0.0.1:8500"
}

variable "consul_scheme" {
  description = "http or https."
  type        = string
  default     = "https"
}

variable "datacenter" {
  description = "Consul datacenter."
  type        = string
  default     = "dc1"
}
