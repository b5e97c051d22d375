provider "aws" {
  region = var.region
}

module "appconfig" {
  source = "../../modules/aws-appconfig"

  application_name    = var.application_name
  environment_name    = var.environment_name
  profile_name        = "veltrix"
  content             = jsonencode(var.settings)
  veltrix_url_options = var.veltrix_url_options
  tags                = { "managed-by" = "terraform", "example" = "veltrix-aws-appconfig" }
}
