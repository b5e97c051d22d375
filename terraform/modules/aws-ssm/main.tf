data "aws_region" "current" {}

data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

locals {
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition
  account_id = data.aws_caller_identity.current.account_id
  path       = trimsuffix(var.path, "/")
  slug       = trim(replace(local.path, "/", "-"), "-")

  parameter_arn_prefix = "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${local.path}"
  ssm_service          = "ssm.${local.region}.amazonaws.com"

  url_options = merge(
    { region = local.region, secure = "true", key_id = aws_kms_key.this.arn },
    var.veltrix_url_options,
  )
  url_query   = join("&", [for name, value in local.url_options : "${name}=${urlencode(value)}"])
  veltrix_url = "ssm://${local.path}?${local.url_query}"
}

data "aws_iam_policy_document" "key" {
  # In a key policy, Resource "*" means this key and nothing else; the account-root
  # statement is AWS's default key policy, keeping the key manageable while IAM decides use.
  #checkov:skip=CKV_AWS_109:key policy; "*" is this key only (AWS default key policy statement)
  #checkov:skip=CKV_AWS_111:key policy; "*" is this key only (AWS default key policy statement)
  #checkov:skip=CKV_AWS_356:key policy; "*" is this key only (AWS default key policy statement)
  statement {
    sid       = "AccountAdministration"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  dynamic "statement" {
    for_each = length(var.key_administrator_arns) > 0 ? [1] : []
    content {
      sid = "KeyAdministrators"
      actions = [
        "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*", "kms:Revoke*",
        "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:TagResource", "kms:UntagResource",
        "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion",
      ]
      resources = ["*"]
      principals {
        type        = "AWS"
        identifiers = var.key_administrator_arns
      }
    }
  }
}

resource "aws_kms_key" "this" {
  description             = "SecureString parameters under ${local.path} (Veltrix)"
  deletion_window_in_days = var.kms_deletion_window_in_days
  enable_key_rotation     = true
  policy                  = data.aws_iam_policy_document.key.json
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/veltrix-${local.slug}"
  target_key_id = aws_kms_key.this.key_id
}

resource "aws_ssm_parameter" "this" {
  for_each = nonsensitive(toset(keys(var.parameters)))

  name   = "${local.path}/${each.key}"
  type   = "SecureString"
  key_id = aws_kms_key.this.arn
  value  = var.parameters[each.key]
  tier   = var.tier
  tags   = var.tags

  lifecycle {
    # Terraform seeds the values; Veltrix (and people) change them afterwards.
    ignore_changes = [value]
  }
}

data "aws_iam_policy_document" "read" {
  statement {
    sid = "ReadParametersUnderPath"
    actions = [
      "ssm:GetParameter",
      "ssm:GetParameters",
      "ssm:GetParametersByPath",
      "ssm:GetParameterHistory",
    ]
    resources = [local.parameter_arn_prefix, "${local.parameter_arn_prefix}/*"]
  }

  statement {
    sid       = "DecryptThroughSSMOnly"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.this.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.ssm_service]
    }
  }
}

data "aws_iam_policy_document" "write" {
  statement {
    sid = "WriteParametersUnderPath"
    actions = [
      "ssm:PutParameter",
      "ssm:DeleteParameter",
      "ssm:DeleteParameters",
      "ssm:AddTagsToResource",
    ]
    resources = ["${local.parameter_arn_prefix}/*"]
  }

  statement {
    sid       = "EncryptThroughSSMOnly"
    actions   = ["kms:Encrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.this.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.ssm_service]
    }
  }
}

resource "aws_iam_policy" "read" {
  count       = var.create_read_policy ? 1 : 0
  name        = "${coalesce(var.policy_name_prefix, "veltrix-${local.slug}")}-read"
  description = "Read SSM parameters under ${local.path} through Veltrix"
  policy      = data.aws_iam_policy_document.read.json
  tags        = var.tags
}

resource "aws_iam_policy" "write" {
  count       = var.create_write_policy ? 1 : 0
  name        = "${coalesce(var.policy_name_prefix, "veltrix-${local.slug}")}-write"
  description = "Write SSM parameters under ${local.path} through Veltrix"
  policy      = data.aws_iam_policy_document.write.json
  tags        = var.tags
}
