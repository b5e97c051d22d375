variable "application_name" {
  description = "Name of the AppConfig application (1-64 characters)."
  type        = string

  validation {
    condition     = length(var.application_name) >= 1 && length(var.application_name) <= 64
    error_message = "application_name must be 1-64 characters."
  }
}

variable "environment_name" {
  description = "Name of the AppConfig environment (1-64 characters), e.g. \"production\"."
  type        = string

  validation {
    condition     = length(var.environment_name) >= 1 && length(var.environment_name) <= 64
    error_message = "environment_name must be 1-64 characters."
  }
}

variable "profile_name" {
  description = "Name of the freeform configuration profile holding the Veltrix document (1-128 characters)."
  type        = string
  default     = "veltrix"

  validation {
    condition     = length(var.profile_name) >= 1 && length(var.profile_name) <= 128
    error_message = "profile_name must be 1-128 characters."
  }
}

variable "description" {
  description = "Description set on the application, environment and profile."
  type        = string
  default     = "Configuration read through Veltrix"
}

variable "content" {
  description = "The initial hosted configuration document (JSON or YAML text). Veltrix keys are paths inside it: {\"payments\": {\"timeout_ms\": 500}} holds the key payments/timeout_ms."
  type        = string
  default     = "{}"
}

variable "content_type" {
  description = "MIME type of content: application/json or application/x-yaml."
  type        = string
  default     = "application/json"

  validation {
    condition     = contains(["application/json", "application/x-yaml", "application/yaml", "text/yaml"], var.content_type)
    error_message = "content_type must be application/json or a YAML type."
  }
}

variable "json_schema" {
  description = "Optional JSON Schema (text) that AppConfig validates every deployed document against; null for none."
  type        = string
  default     = null
}

variable "deployment_strategy" {
  description = "How a new document rolls out. The default deploys to every poller at once with no bake time, so a change is visible at the next AppConfigData poll."
  type = object({
    deployment_duration_in_minutes = number
    final_bake_time_in_minutes     = number
    growth_factor                  = number
    growth_type                    = string
  })
  default = {
    deployment_duration_in_minutes = 0
    final_bake_time_in_minutes     = 0
    growth_factor                  = 100
    growth_type                    = "LINEAR"
  }

  validation {
    condition     = contains(["LINEAR", "EXPONENTIAL"], var.deployment_strategy.growth_type)
    error_message = "deployment_strategy.growth_type must be LINEAR or EXPONENTIAL."
  }
}

variable "create_read_policy" {
  description = "Create an IAM policy allowing appconfig:StartConfigurationSession and appconfig:GetLatestConfiguration on this profile only."
  type        = bool
  default     = true
}

variable "read_policy_name" {
  description = "Name of the read policy; null derives one from the application and environment names."
  type        = string
  default     = null
}

variable "veltrix_url_options" {
  description = "Extra query options appended to veltrix_url, e.g. { poll_interval = \"30\" } (see docs/stores/appconfig.md). Keys are sorted; values are URL-encoded."
  type        = map(string)
  default     = {}
}

variable "tags" {
  description = "Tags applied to every resource that takes tags."
  type        = map(string)
  default     = {}
}
