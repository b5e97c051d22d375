variable "region" {
  description = "AWS region of the parameters."
  type        = string
  default     = "us-east-1"
}

variable "path" {
  description = "Parameter path the Veltrix keys live under."
  type        = string
  default     = "/veltrix-example/dev"
}

variable "db_password" {
  description = "Example secret stored as the key db/password."
  type        = string
  sensitive   = true
}

variable "veltrix_url_options" {
  description = "Extra options for veltrix_url, e.g. { poll_interval = \"30\" }."
  type        = map(string)
  default     = {}
}
