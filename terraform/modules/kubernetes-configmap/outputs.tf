output "veltrix_url" {
  description = "The API store URL for veltrix.Client: k8s://NAMESPACE/PREFIX (credentials come from the pod's ServiceAccount token or a kubeconfig, never the URL)."
  value       = local.veltrix_url
}

output "veltrix_volume_url" {
  description = "The mounted-volume store URL: k8s-volume://?volume.PREFIX/NAME=ROOT/NAME&... with each ConfigMap (and the Secret, flagged secret) mounted at volume_mount_root/NAME."
  value       = local.veltrix_volume_url
}

output "namespace" {
  description = "The namespace holding the objects."
  value       = local.namespace
}

output "config_map_names" {
  description = "Names of the ConfigMaps created."
  value       = local.config_map_names
}

output "secret_name" {
  description = "Name of the Secret created, or null."
  value       = var.secret_name
}

output "service_account_name" {
  description = "The ServiceAccount to run Veltrix pods as (serviceAccountName)."
  value       = kubernetes_service_account_v1.this.metadata[0].name
}

output "role_name" {
  description = "The Role granting access to exactly these objects (resourceNames)."
  value       = kubernetes_role_v1.this.metadata[0].name
}

output "volume_mounts" {
  description = "Object name -> mount path that veltrix_volume_url expects (volumeMounts of the pod)."
  value       = { for name in concat(local.config_map_names, local.secret_names) : name => "${var.volume_mount_root}/${name}" }
}
