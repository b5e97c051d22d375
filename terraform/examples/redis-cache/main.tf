provider "aws" {
  region = var.region
}

module "cache" {
  source = "../../modules/redis-cache"

  name                      = "veltrix-example-cache"
  vpc_id                    = var.vpc_id
  subnet_ids                = var.subnet_ids
  client_security_group_ids = var.client_security_group_ids
  auth_token                = var.auth_token
  tags                      = { "managed-by" = "terraform", "example" = "veltrix-redis-cache" }
}
