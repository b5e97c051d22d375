variable "region" {
  description = "AWS region of the cache."
  type        = string
  default     = "us-east-1"
}

variable "vpc_id" {
  description = "VPC to run the cache in."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets in at least two availability zones."
  type        = list(string)
}

variable "client_security_group_ids" {
  description = "Security groups of the services using the cache."
  type        = list(string)
}

variable "auth_token" {
  description = "Redis AUTH token (16-128 characters), e.g. from a secrets manager: TF_VAR_auth_token."
  type        = string
  sensitive   = true
}
