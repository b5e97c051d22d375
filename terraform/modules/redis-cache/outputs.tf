output "veltrix_cache_url" {
  description = "The shared-cache URL for veltrix.Client(..., cache_url=...): rediss://:TOKEN@PRIMARY:PORT/DB (TLS, AUTH token)."
  value       = local.veltrix_cache_url
  sensitive   = true
}

output "veltrix_url" {
  description = "The same Redis as a Veltrix store (redis adapter), in the same form as veltrix_cache_url."
  value       = local.veltrix_cache_url
  sensitive   = true
}

output "primary_endpoint_address" {
  description = "Address of the primary (writes and reads)."
  value       = local.endpoint
}

output "reader_endpoint_address" {
  description = "Address spreading reads over the replicas."
  value       = aws_elasticache_replication_group.this.reader_endpoint_address
}

output "port" {
  description = "Redis port."
  value       = var.port
}

output "security_group_id" {
  description = "Security group of the cache; add client security groups through client_security_group_ids."
  value       = aws_security_group.cache.id
}

output "kms_key_arn" {
  description = "KMS key encrypting the cache at rest."
  value       = local.kms_key_arn
}
