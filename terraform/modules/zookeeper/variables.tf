variable "name" {
  description = "Name of the ensemble; prefixes every resource name."
  type        = string
  default     = "veltrix-zookeeper"
}

variable "vpc_id" {
  description = "VPC the ensemble runs in."
  type        = string
}

variable "subnet_ids" {
  description = "Three private subnets (ideally in three availability zones), one per node, in node order."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) == 3
    error_message = "subnet_ids must list exactly three subnets (one per node)."
  }
}

variable "client_cidr_blocks" {
  description = "CIDR blocks of the clients allowed to reach the client port; nothing else can."
  type        = list(string)
  default     = []
}

variable "client_security_group_ids" {
  description = "Security groups of the clients allowed to reach the client port."
  type        = list(string)
  default     = []
}

variable "egress_cidr_blocks" {
  description = "Where nodes may open HTTPS/HTTP connections (package mirrors, SSM agent); use VPC endpoint or proxy ranges to keep them off the internet."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "instance_type" {
  description = "EC2 instance type of the nodes."
  type        = string
  default     = "t3.medium"
}

variable "ami_id" {
  description = "AMI of the nodes (Debian 12 or Ubuntu 22.04+, which package ZooKeeper 3.8); null looks up the latest official Debian 12 AMI."
  type        = string
  default     = null
}

variable "data_volume_size_gb" {
  description = "Size of each node's encrypted data volume (snapshots and transaction log) in GiB."
  type        = number
  default     = 20
}

variable "kms_key_arn" {
  description = "KMS key encrypting the root and data volumes; null creates one for the ensemble."
  type        = string
  default     = null
}

variable "client_port" {
  description = "ZooKeeper client port."
  type        = number
  default     = 2181
}

variable "chroot" {
  description = "Chroot path the Veltrix URL points at, e.g. \"/veltrix/app\" (created by Veltrix on first write)."
  type        = string
  default     = "/veltrix"

  validation {
    condition     = can(regex("^(/[A-Za-z0-9._-]+)+$", var.chroot))
    error_message = "chroot must look like /segment[/segment...]."
  }
}

variable "veltrix_url_options" {
  description = "Extra query options appended to veltrix_url, e.g. { session_timeout = \"15\" } (see docs/stores/zookeeper.md)."
  type        = map(string)
  default     = {}
}

variable "tags" {
  description = "Tags applied to every resource that takes tags."
  type        = map(string)
  default     = {}
}
