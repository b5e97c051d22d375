variable "kubeconfig" {
  description = "Path of the kubeconfig Terraform uses (a user allowed to create namespaces and RBAC objects)."
  type        = string
  default     = "~/.kube/config"
}

variable "namespace" {
  description = "Namespace to create for the example."
  type        = string
  default     = "veltrix-example"
}

variable "database_password" {
  description = "Initial value of the secret key payments/db_password."
  type        = string
  sensitive   = true
}
