output "veltrix_url" {
  description = "The store URL for veltrix.Client: zookeeper://IP1:PORT,IP2:PORT,IP3:PORT/CHROOT."
  value       = local.veltrix_url
}

output "connect_string" {
  description = "ZooKeeper connection string of the ensemble (without chroot)."
  value       = local.connect_string
}

output "node_private_ips" {
  description = "Private addresses of the three nodes, in myid order."
  value       = local.node_ips
}

output "instance_ids" {
  description = "EC2 instance ids of the nodes."
  value       = aws_instance.node[*].id
}

output "security_group_id" {
  description = "Security group of the ensemble; add client security groups through client_security_group_ids."
  value       = aws_security_group.ensemble.id
}

output "kms_key_arn" {
  description = "KMS key encrypting the nodes' volumes."
  value       = local.kms_key_arn
}
