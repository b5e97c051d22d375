data "google_project" "this" {
  project_id = var.project_id
}

locals {
  prefix = trim(var.prefix, "/")

  # Veltrix's reversible key -> secret id encoding (adapters/gcp_secret_manager.py).
  secret_keys = {
    for key in nonsensitive(keys(var.secrets)) :
    key => local.prefix == "" ? key : "${local.prefix}/${key}"
  }
  secret_ids = {
    for key, full in local.secret_keys :
    key => replace(replace(replace(full, "_", "__"), "/", "_s"), ".", "_d")
  }
  id_prefix = local.prefix == "" ? "" : "${replace(replace(replace(local.prefix, "_", "__"), "/", "_s"), ".", "_d")}_s"

  service_account_email = coalesce(var.service_account_email, one(google_service_account.this[*].email))
  member                = "serviceAccount:${local.service_account_email}"

  secret_manager_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-secretmanager.iam.gserviceaccount.com"

  url_path    = local.prefix == "" ? var.project_id : "${var.project_id}/${local.prefix}"
  url_query   = join("&", [for name, value in var.veltrix_url_options : "${name}=${urlencode(value)}"])
  veltrix_url = local.url_query == "" ? "gcpsm://${local.url_path}" : "gcpsm://${local.url_path}?${local.url_query}"
}

resource "google_service_account" "this" {
  count        = var.service_account_email == null ? 1 : 0
  project      = var.project_id
  account_id   = var.service_account_id
  display_name = "Veltrix reader for ${local.url_path}"
}

resource "google_pubsub_topic" "notifications" {
  count        = var.notification_topic == null ? 0 : 1
  project      = var.project_id
  name         = var.notification_topic
  kms_key_name = var.kms_key_name
  labels       = var.labels
}

# Secret Manager publishes to the topic as its service agent.
resource "google_pubsub_topic_iam_member" "secret_manager_publisher" {
  count   = var.notification_topic == null ? 0 : 1
  project = var.project_id
  topic   = google_pubsub_topic.notifications[0].name
  role    = "roles/pubsub.publisher"
  member  = local.secret_manager_agent
}

resource "google_secret_manager_secret" "this" {
  for_each = local.secret_ids

  project   = var.project_id
  secret_id = each.value

  labels = merge(var.labels, {
    "managed-by"  = "veltrix"
    "veltrix-top" = substr(sha256(split("/", local.secret_keys[each.key])[0]), 0, 16)
  })
  annotations = {
    "veltrix-key" = local.secret_keys[each.key]
  }

  replication {
    dynamic "auto" {
      for_each = length(var.replica_locations) == 0 ? [1] : []
      content {
        dynamic "customer_managed_encryption" {
          for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
          content {
            kms_key_name = customer_managed_encryption.value
          }
        }
      }
    }
    dynamic "user_managed" {
      for_each = length(var.replica_locations) == 0 ? [] : [1]
      content {
        dynamic "replicas" {
          for_each = var.replica_locations
          content {
            location = replicas.value
            dynamic "customer_managed_encryption" {
              for_each = contains(keys(var.replica_kms_key_names), replicas.value) ? [var.replica_kms_key_names[replicas.value]] : []
              content {
                kms_key_name = customer_managed_encryption.value
              }
            }
          }
        }
      }
    }
  }

  dynamic "topics" {
    for_each = google_pubsub_topic.notifications[*].id
    content {
      name = topics.value
    }
  }

  depends_on = [google_pubsub_topic_iam_member.secret_manager_publisher]
}

resource "google_secret_manager_secret_version" "initial" {
  for_each = local.secret_ids

  secret      = google_secret_manager_secret.this[each.key].id
  secret_data = var.secrets[each.key]

  lifecycle {
    # Terraform seeds the first version; later versions come from Veltrix writes.
    ignore_changes = [secret_data]
  }
}

# Read access to every secret under the prefix, including those Veltrix creates later.
resource "google_project_iam_member" "accessor" {
  project = var.project_id
  role    = "roles/secretmanager.secretAccessor"
  member  = local.member

  dynamic "condition" {
    for_each = local.id_prefix == "" ? [] : [local.id_prefix]
    content {
      title       = "veltrix-prefix"
      description = "Secrets under the Veltrix prefix ${local.prefix}"
      expression  = "resource.name.startsWith(\"projects/${data.google_project.this.number}/secrets/${condition.value}\")"
    }
  }
}

resource "google_project_iam_member" "viewer" {
  count   = var.grant_list ? 1 : 0
  project = var.project_id
  role    = "roles/secretmanager.viewer"
  member  = local.member
}
