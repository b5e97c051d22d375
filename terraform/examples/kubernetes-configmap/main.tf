provider "kubernetes" {
  config_path = var.kubeconfig
}

module "config" {
  source = "../../modules/kubernetes-configmap"

  namespace        = var.namespace
  create_namespace = true
  prefix           = "app"
  config_maps = {
    payments = {
      timeout_ms = "500"
      retries    = "3"
    }
  }
  secret_name = "payments-credentials"
  secret_data = { "db-password" = var.database_password }
  access      = "watch"
}
