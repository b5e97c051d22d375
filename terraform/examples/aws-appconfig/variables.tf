variable "region" {
  description = "AWS region to create the AppConfig application in."
  type        = string
  default     = "us-east-1"
}

variable "application_name" {
  description = "Name of the AppConfig application."
  type        = string
  default     = "veltrix-example"
}

variable "environment_name" {
  description = "Name of the AppConfig environment."
  type        = string
  default     = "dev"
}

variable "settings" {
  description = "The configuration document (any JSON-encodable object); nested members become Veltrix keys such as payments/timeout_ms."
  type        = any
  default = {
    payments = {
      timeout_ms = 500
      retries    = 3
    }
    features = {
      new_checkout = false
    }
  }
}

variable "veltrix_url_options" {
  description = "Extra options for veltrix_url, e.g. { poll_interval = \"30\" }."
  type        = map(string)
  default     = {}
}
