variable "region" {
  description = "AWS region of the ensemble."
  type        = string
  default     = "us-east-1"
}

variable "vpc_id" {
  description = "VPC to run the ensemble in."
  type        = string
}

variable "subnet_ids" {
  description = "Three private subnets, one per node."
  type        = list(string)
}

variable "client_cidr_blocks" {
  description = "CIDR blocks of the services that read configuration."
  type        = list(string)
}
