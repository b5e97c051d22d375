data "aws_region" "current" {}

data "aws_partition" "current" {}

resource "aws_appconfig_application" "this" {
  name        = var.application_name
  description = var.description
  tags        = var.tags
}

resource "aws_appconfig_environment" "this" {
  name           = var.environment_name
  description    = var.description
  application_id = aws_appconfig_application.this.id
  tags           = var.tags
}

resource "aws_appconfig_configuration_profile" "this" {
  name           = var.profile_name
  description    = var.description
  application_id = aws_appconfig_application.this.id
  location_uri   = "hosted"
  type           = "AWS.Freeform"
  tags           = var.tags

  dynamic "validator" {
    for_each = var.json_schema == null ? [] : [var.json_schema]
    content {
      type    = "JSON_SCHEMA"
      content = validator.value
    }
  }
}

# A change of content creates a new hosted version and deploys it; the new version
# exists before the old one is removed, so the deployed version never disappears.
resource "aws_appconfig_hosted_configuration_version" "this" {
  application_id           = aws_appconfig_application.this.id
  configuration_profile_id = aws_appconfig_configuration_profile.this.configuration_profile_id
  content                  = var.content
  content_type             = var.content_type
  description              = "Managed by Terraform"

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_appconfig_deployment_strategy" "this" {
  name                           = "${var.application_name}-${var.environment_name}-veltrix"
  description                    = "Veltrix rollout for ${var.application_name}/${var.environment_name}"
  deployment_duration_in_minutes = var.deployment_strategy.deployment_duration_in_minutes
  final_bake_time_in_minutes     = var.deployment_strategy.final_bake_time_in_minutes
  growth_factor                  = var.deployment_strategy.growth_factor
  growth_type                    = var.deployment_strategy.growth_type
  replicate_to                   = "NONE"
  tags                           = var.tags
}

resource "aws_appconfig_deployment" "this" {
  application_id           = aws_appconfig_application.this.id
  environment_id           = aws_appconfig_environment.this.environment_id
  configuration_profile_id = aws_appconfig_configuration_profile.this.configuration_profile_id
  configuration_version    = aws_appconfig_hosted_configuration_version.this.version_number
  deployment_strategy_id   = aws_appconfig_deployment_strategy.this.id
  description              = "Managed by Terraform"
  tags                     = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

locals {
  # The account id is part of every AppConfig ARN; reading it from there needs no STS call.
  account_id = split(":", aws_appconfig_application.this.arn)[4]
  region     = data.aws_region.current.name

  configuration_arn = join("", [
    "arn:${data.aws_partition.current.partition}:appconfig:${local.region}:${local.account_id}:",
    "application/${aws_appconfig_application.this.id}",
    "/environment/${aws_appconfig_environment.this.environment_id}",
    "/configuration/${aws_appconfig_configuration_profile.this.configuration_profile_id}",
  ])

  url_options = merge({ region = local.region }, var.veltrix_url_options)
  url_query   = join("&", [for name, value in local.url_options : "${name}=${urlencode(value)}"])
  veltrix_url = format(
    "appconfig://%s/%s/%s?%s",
    aws_appconfig_application.this.id,
    aws_appconfig_environment.this.environment_id,
    aws_appconfig_configuration_profile.this.configuration_profile_id,
    local.url_query,
  )
}

data "aws_iam_policy_document" "read" {
  statement {
    sid = "VeltrixReadConfiguration"
    actions = [
      "appconfig:StartConfigurationSession",
      "appconfig:GetLatestConfiguration",
    ]
    resources = [local.configuration_arn]
  }
}

resource "aws_iam_policy" "read" {
  count       = var.create_read_policy ? 1 : 0
  name        = coalesce(var.read_policy_name, "${var.application_name}-${var.environment_name}-veltrix-read")
  description = "Read the AppConfig profile ${var.application_name}/${var.environment_name}/${var.profile_name} through Veltrix"
  policy      = data.aws_iam_policy_document.read.json
  tags        = var.tags
}
