data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_iam_policy_document" "kms" {
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
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

resource "aws_kms_key" "cache" {
  count                   = var.kms_key_arn == null ? 1 : 0
  description             = "Encryption at rest of the ${var.name} ElastiCache replication group"
  deletion_window_in_days = 30
  enable_key_rotation     = true
  policy                  = data.aws_iam_policy_document.kms.json
  tags                    = var.tags
}

locals {
  kms_key_arn = coalesce(var.kms_key_arn, one(aws_kms_key.cache[*].arn))
}

resource "aws_elasticache_subnet_group" "this" {
  name        = var.name
  description = "Subnets of the ${var.name} Veltrix cache"
  subnet_ids  = var.subnet_ids
  tags        = var.tags
}

resource "aws_security_group" "cache" {
  name        = "${var.name}-redis"
  description = "Redis ${var.name}: only the listed clients on the Redis port"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-redis" })
}

resource "aws_vpc_security_group_ingress_rule" "client_cidr" {
  for_each          = toset(var.client_cidr_blocks)
  security_group_id = aws_security_group.cache.id
  description       = "Veltrix clients"
  ip_protocol       = "tcp"
  from_port         = var.port
  to_port           = var.port
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "client_sg" {
  for_each                     = toset(var.client_security_group_ids)
  security_group_id            = aws_security_group.cache.id
  description                  = "Veltrix clients"
  ip_protocol                  = "tcp"
  from_port                    = var.port
  to_port                      = var.port
  referenced_security_group_id = each.value
}

resource "aws_elasticache_replication_group" "this" {
  replication_group_id = var.name
  description          = "Veltrix shared cache (L2) and invalidation bus"
  engine               = "redis"
  engine_version       = var.engine_version
  node_type            = var.node_type
  port                 = var.port
  num_cache_clusters   = var.replicas + 1
  parameter_group_name = "default.redis7"

  subnet_group_name  = aws_elasticache_subnet_group.this.name
  security_group_ids = [aws_security_group.cache.id]

  automatic_failover_enabled = true
  multi_az_enabled           = true
  auto_minor_version_upgrade = true

  # TLS in transit with an AUTH token; encrypted at rest with a customer-managed key.
  transit_encryption_enabled = true
  auth_token                 = var.auth_token
  at_rest_encryption_enabled = true
  kms_key_id                 = local.kms_key_arn

  snapshot_retention_limit = var.snapshot_retention_limit
  apply_immediately        = false

  tags = var.tags
}

locals {
  endpoint = aws_elasticache_replication_group.this.primary_endpoint_address
  # rediss:// = TLS. The token is URL-encoded in the password part; the output is sensitive
  # and Veltrix redacts the password wherever it shows a URL.
  veltrix_cache_url = "rediss://:${urlencode(var.auth_token)}@${local.endpoint}:${var.port}/${var.database}"
}
