locals {
  namespace = var.create_namespace ? kubernetes_namespace_v1.this[0].metadata[0].name : var.namespace
  labels    = merge({ "app.kubernetes.io/managed-by" = "terraform", "app.kubernetes.io/part-of" = "veltrix" }, var.labels)

  verbs = {
    read  = ["get"]
    watch = ["get", "list", "watch"]
    write = ["get", "list", "watch", "update", "patch"]
  }[var.access]

  config_map_names = sort(keys(var.config_maps))
  secret_names     = var.secret_name == null ? [] : [var.secret_name]

  # The mounted-volume store: each object under PREFIX/NAME, Secrets flagged secret.
  volume_options = concat(
    [for name in local.config_map_names : "volume.${var.prefix}/${name}=${var.volume_mount_root}/${name}"],
    [for name in local.secret_names : "secret_volume.${var.prefix}/${name}=${var.volume_mount_root}/${name}"],
  )
  api_query          = join("&", [for name, value in var.veltrix_url_options : "${name}=${urlencode(value)}"])
  veltrix_url        = "k8s://${var.namespace}/${var.prefix}${local.api_query == "" ? "" : "?${local.api_query}"}"
  volume_query       = [for name, value in var.volume_url_options : "${name}=${urlencode(value)}"]
  veltrix_volume_url = "k8s-volume://?${join("&", concat(local.volume_options, local.volume_query))}"
}

resource "kubernetes_namespace_v1" "this" {
  count = var.create_namespace ? 1 : 0

  metadata {
    name   = var.namespace
    labels = local.labels
  }
}

resource "kubernetes_config_map_v1" "this" {
  for_each = var.config_maps

  metadata {
    name      = each.key
    namespace = local.namespace
    labels    = local.labels
  }

  data = each.value

  lifecycle {
    # Terraform seeds the values; Veltrix (or people) change them afterwards.
    ignore_changes = [data]
  }
}

resource "kubernetes_secret_v1" "this" {
  count = var.secret_name == null ? 0 : 1

  metadata {
    name      = var.secret_name
    namespace = local.namespace
    labels    = local.labels
  }

  type = "Opaque"
  data = var.secret_data

  lifecycle {
    ignore_changes = [data]
  }
}

resource "kubernetes_service_account_v1" "this" {
  metadata {
    name      = var.service_account_name
    namespace = local.namespace
    labels    = local.labels
  }

  # Pods opt in with automountServiceAccountToken; the API store needs the token, the
  # volume store does not.
  automount_service_account_token = false
}

resource "kubernetes_role_v1" "this" {
  metadata {
    name      = var.service_account_name
    namespace = local.namespace
    labels    = local.labels
  }

  dynamic "rule" {
    for_each = length(local.config_map_names) > 0 ? [1] : []
    content {
      api_groups     = [""]
      resources      = ["configmaps"]
      resource_names = local.config_map_names
      verbs          = local.verbs
    }
  }

  dynamic "rule" {
    for_each = local.secret_names
    content {
      api_groups     = [""]
      resources      = ["secrets"]
      resource_names = [rule.value]
      verbs          = local.verbs
    }
  }
}

resource "kubernetes_role_binding_v1" "this" {
  metadata {
    name      = var.service_account_name
    namespace = local.namespace
    labels    = local.labels
  }

  role_ref {
    api_group = "rbac.authorization.k8s.io"
    kind      = "Role"
    name      = kubernetes_role_v1.this.metadata[0].name
  }

  subject {
    kind      = "ServiceAccount"
    name      = kubernetes_service_account_v1.this.metadata[0].name
    namespace = local.namespace
  }
}
