output "veltrix_cache_url" {
  description = "Shared-cache URL for veltrix.Client(cache_url=...) (sensitive: holds the AUTH token)."
  value       = module.cache.veltrix_cache_url
  sensitive   = true
}

output "veltrix_url" {
  description = "The same Redis as a Veltrix store."
  value       = module.cache.veltrix_url
  sensitive   = true
}
