locals {
  namespace = var.create_namespace ? kubernetes_namespace_v1.this[0].metadata[0].name : var.namespace

  # The k8s:// store finds its objects by these two labels; the URL prefix is hashed
  # because label values are short and narrow.
  store_labels = {
    "app.kubernetes.io/managed-by" = "veltrix"
    "veltrix.io/prefix"            = substr(sha256(var.prefix), 0, 32)
  }
  labels = merge(var.labels, local.store_labels)

  value_keys  = keys(var.values)
  secret_keys = nonsensitive(keys(var.secret_values))

  # The k8s:// layout: a key's first segment picks the object, the rest is the data key
  # ("_" -> "__", "/" -> "_s", a leading "." -> "_d", "_" alone for no rest).
  first = { for key in concat(local.value_keys, local.secret_keys) : key => split("/", key)[0] }
  escaped = {
    for key in concat(local.value_keys, local.secret_keys) :
    key => replace(replace(join("/", slice(split("/", key), 1, length(split("/", key)))), "_", "__"), "/", "_s")
  }
  data_key = {
    for key, text in local.escaped :
    key => text == "" ? "_" : (startswith(text, ".") ? "_d${substr(text, 1, -1)}" : text)
  }
  # Object name: "vx-" + PREFIX/FIRST with lowercase letters and digits kept, an uppercase
  # letter written "-" + its lowercase, and "-" "_" "." "/" written -0 -1 -2 -3.
  name_escapes = { "-" = "-0", "_" = "-1", "." = "-2", "/" = "-3" }
  object_name = {
    for first in distinct(values(local.first)) :
    first => "vx-${join("", [for c in split("", "${var.prefix}/${first}") : lookup(local.name_escapes, c, can(regex("^[a-z0-9]$", c)) ? c : "-${lower(c)}")])}"
  }

  config_firsts = toset([for key in local.value_keys : local.first[key]])
  secret_firsts = toset([for key in local.secret_keys : local.first[key]])
  config_names  = sort([for first in local.config_firsts : local.object_name[first]])
  secret_names  = sort([for first in local.secret_firsts : local.object_name[first]])

  verbs_on_named = {
    read  = ["get"]
    watch = ["get"]
    write = ["get", "update", "patch", "delete"]
  }[var.access]
  verbs_on_all = {
    read  = []
    watch = ["list", "watch"]
    write = ["create", "list", "watch"]
  }[var.access]

  api_query = join("&", [for name, value in var.veltrix_url_options : "${name}=${urlencode(value)}"])
  secret_query = join("&", concat(["kind=secret"], [
    for name, value in var.veltrix_url_options : "${name}=${urlencode(value)}"
  ]))
  veltrix_url        = "k8s://${var.namespace}/${var.prefix}${local.api_query == "" ? "" : "?${local.api_query}"}"
  veltrix_secret_url = length(local.secret_keys) == 0 ? null : "k8s://${var.namespace}/${var.prefix}?${local.secret_query}"

  # The mounted-volume store: each object under its first key segment, Secrets flagged
  # secret, data keys decoded the k8s:// way (layout=veltrix): the same keys as veltrix_url.
  volume_mounts = concat(
    [for first in sort(tolist(local.config_firsts)) : { kind = "configmap", name = local.object_name[first], key_prefix = first, mount_path = "${var.volume_mount_root}/configmaps/${local.object_name[first]}" }],
    [for first in sort(tolist(local.secret_firsts)) : { kind = "secret", name = local.object_name[first], key_prefix = first, mount_path = "${var.volume_mount_root}/secrets/${local.object_name[first]}" }],
  )
  volume_options = concat(
    ["layout=veltrix"],
    [for m in local.volume_mounts : "${m.kind == "secret" ? "secret_volume" : "volume"}.${m.key_prefix}=${m.mount_path}"],
    [for name, value in var.volume_url_options : "${name}=${urlencode(value)}"],
  )
  veltrix_volume_url = "k8s-volume://?${join("&", local.volume_options)}"
}

resource "kubernetes_namespace_v1" "this" {
  count = var.create_namespace ? 1 : 0

  metadata {
    name   = var.namespace
    labels = var.labels
  }
}

resource "kubernetes_config_map_v1" "this" {
  for_each = local.config_firsts

  metadata {
    name        = local.object_name[each.key]
    namespace   = local.namespace
    labels      = local.labels
    annotations = { "veltrix.io/path" = "${var.prefix}/${each.key}" }
  }

  data = { for key in local.value_keys : local.data_key[key] => var.values[key] if local.first[key] == each.key }

  lifecycle {
    # Terraform seeds the values; Veltrix writes data and per-key version annotations.
    ignore_changes = [data, binary_data, metadata[0].annotations]
  }
}

resource "kubernetes_secret_v1" "this" {
  for_each = local.secret_firsts

  metadata {
    name        = local.object_name[each.key]
    namespace   = local.namespace
    labels      = local.labels
    annotations = { "veltrix.io/path" = "${var.prefix}/${each.key}" }
  }

  type = "Opaque"
  data = { for key in local.secret_keys : local.data_key[key] => var.secret_values[key] if local.first[key] == each.key }

  lifecycle {
    ignore_changes = [data, binary_data, metadata[0].annotations]
  }
}

resource "kubernetes_service_account_v1" "this" {
  metadata {
    name      = var.service_account_name
    namespace = local.namespace
    labels    = var.labels
  }

  # Pods opt in with automountServiceAccountToken: the API store needs the token, the
  # volume store does not.
  automount_service_account_token = false
}

resource "kubernetes_role_v1" "this" {
  metadata {
    name      = var.service_account_name
    namespace = local.namespace
    labels    = var.labels
  }

  # get (and update/patch/delete) only the objects this module creates.
  dynamic "rule" {
    for_each = { for kind, names in { configmaps = local.config_names, secrets = local.secret_names } : kind => names if length(names) > 0 }
    content {
      api_groups     = [""]
      resources      = [rule.key]
      resource_names = rule.value
      verbs          = local.verbs_on_named
    }
  }

  # list/watch select by label and create names a new object: Kubernetes cannot limit
  # these verbs to resourceNames, so they cover the namespace (keep it for Veltrix).
  dynamic "rule" {
    for_each = length(local.verbs_on_all) > 0 ? [1] : []
    content {
      api_groups = [""]
      resources  = length(local.secret_names) > 0 ? ["configmaps", "secrets"] : ["configmaps"]
      verbs      = local.verbs_on_all
    }
  }
}

resource "kubernetes_role_binding_v1" "this" {
  metadata {
    name      = var.service_account_name
    namespace = local.namespace
    labels    = var.labels
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
