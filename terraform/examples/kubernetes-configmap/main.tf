provider "kubernetes" {
  config_path = var.kubeconfig
}

module "config" {
  source = "../../modules/kubernetes-configmap"

  namespace        = var.namespace
  create_namespace = true
  prefix           = "app"
  values = {
    "payments/timeout_ms" = "500"
    "payments/retries"    = "3"
  }
  secret_values = { "payments/db_password" = var.database_password }
  access        = "watch"
}
