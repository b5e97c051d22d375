terraform {
  required_version = ">= 1.5.0, < 2.0.0"

  required_providers {
    consul = {
      source  = "hashicorp/consul"
      version = ">= 2.18, < 3.0"
    }
  }
}
