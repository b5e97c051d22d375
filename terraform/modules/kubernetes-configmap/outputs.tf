output "veltrix_url" {
  description = "The API store URL for veltrix.Client: k8s://NAMESPACE/PREFIX (ConfigMaps; credentials come from the pod's ServiceAccount token or a kubeconfig, never the URL)."
  value       = local.veltrix_url
}

output "veltrix_secret_url" {
  description = "The API store URL of the Secrets: k8s://NAMESPACE/PREFIX?kind=secret; null without secret_values."
  value       = local.veltrix_secret_url
}

output "veltrix_volume_url" {
  description = "The mounted-volume store URL for a pod that mounts every object at its volume_mounts path: k8s-volume://?layout=veltrix&volume.FIRST=PATH&secret_volume.FIRST=PATH... (the same keys as veltrix_url and veltrix_secret_url)."
  value       = local.veltrix_volume_url
}

output "volume_mounts" {
  description = "The objects to mount for veltrix_volume_url: a list of { kind, name, key_prefix, mount_path }."
  value       = local.volume_mounts
}

output "namespace" {
  description = "The namespace holding the objects."
  value       = local.namespace
}

output "config_map_names" {
  description = "Names of the ConfigMaps created (vx-...)."
  value       = local.config_names
}

output "secret_names" {
  description = "Names of the Secrets created (vx-...)."
  value       = local.secret_names
}

output "service_account_name" {
  description = "The ServiceAccount to run Veltrix pods as (serviceAccountName)."
  value       = kubernetes_service_account_v1.this.metadata[0].name
}

output "role_name" {
  description = "The Role of the ServiceAccount."
  value       = kubernetes_role_v1.this.metadata[0].name
}
