provider "aws" {
  region = var.region
}

module "ssm" {
  source = "../../modules/aws-ssm"

  path = var.path
  parameters = {
    "payments/timeout_ms" = "500"
    "payments/retries"    = "3"
    "db/password"         = var.db_password
  }
  create_write_policy = true
  veltrix_url_options = var.veltrix_url_options
  tags                = { "managed-by" = "terraform", "example" = "veltrix-aws-ssm" }
}
