locals {
  prefix = trim(var.prefix, "/")

  # Veltrix's parameter id: prefix/name with its reversible encoding
  # (adapters/gcp_parameter_manager.py, the same as the Secret Manager store's).
  parameter_keys = {
    for name in keys(var.parameters) :
    name => local.prefix == "" ? name : "${local.prefix}/${name}"
  }
  parameter_ids = {
    for name, full in local.parameter_keys :
    name => replace(replace(replace(full, "_", "__"), "/", "_s"), ".", "_d")
  }

  secret_names = [
    for secret in var.referenced_secrets :
    startswith(secret, "projects/") ? secret : "projects/${var.project_id}/secrets/${secret}"
  ]
  # Every (parameter, referenced secret) pair: the parameter's principal reads the secret.
  secret_grants = {
    for pair in setproduct(keys(var.parameters), local.secret_names) :
    "${pair[0]} ${pair[1]}" => { parameter = pair[0], secret = pair[1] }
  }

  service_account_email = coalesce(var.service_account_email, one(google_service_account.this[*].email))
  member                = "serviceAccount:${local.service_account_email}"

  url_path    = local.prefix == "" ? var.project_id : "${var.project_id}/${local.prefix}"
  url_query   = join("&", concat(["location=global"], [for name, value in var.veltrix_url_options : "${name}=${urlencode(value)}"]))
  veltrix_url = "gcppm://${local.url_path}?${local.url_query}"
}

resource "google_service_account" "this" {
  count        = var.service_account_email == null ? 1 : 0
  project      = var.project_id
  account_id   = var.service_account_id
  display_name = "Veltrix reader for Parameter Manager ${local.url_path}"
}

resource "google_parameter_manager_parameter" "this" {
  for_each = local.parameter_ids

  project      = var.project_id
  parameter_id = each.value
  format       = var.parameters[each.key].format
  kms_key      = var.kms_key_name

  labels = merge(var.labels, { "managed-by" = "veltrix" })

  lifecycle {
    precondition {
      condition     = length(each.value) <= 63
      error_message = "parameter id ${each.value} is longer than 63 characters."
    }
  }
}

resource "google_parameter_manager_parameter_version" "initial" {
  for_each = local.parameter_ids

  parameter            = google_parameter_manager_parameter.this[each.key].id
  parameter_version_id = "v1"
  parameter_data       = var.parameters[each.key].data

  lifecycle {
    # Terraform seeds v1; later versions (v2, v3, ...) come from Veltrix writes.
    ignore_changes = [parameter_data]
  }

  depends_on = [google_secret_manager_secret_iam_member.parameter_reads_secret]
}

# Rendering runs as the parameter's own identity: let it read the referenced secrets.
resource "google_secret_manager_secret_iam_member" "parameter_reads_secret" {
  for_each = local.secret_grants

  project   = split("/", each.value.secret)[1]
  secret_id = each.value.secret
  role      = "roles/secretmanager.secretAccessor"
  member    = google_parameter_manager_parameter.this[each.value.parameter].policy_member[0].iam_policy_uid_principal
}

# The application: list and read parameters, render versions.
resource "google_project_iam_member" "viewer" {
  project = var.project_id
  role    = "roles/parametermanager.parameterViewer"
  member  = local.member
}

resource "google_project_iam_member" "accessor" {
  project = var.project_id
  role    = "roles/parametermanager.parameterAccessor"
  member  = local.member
}

resource "google_project_iam_member" "writer" {
  count   = var.grant_write ? 1 : 0
  project = var.project_id
  role    = "roles/parametermanager.parameterVersionManager"
  member  = local.member
}
