output "veltrix_url" {
  description = "Store URL for veltrix.Client / veltrix.Client.from_terraform."
  value       = module.zookeeper.veltrix_url
}

output "node_private_ips" {
  description = "Addresses of the three nodes."
  value       = module.zookeeper.node_private_ips
}
