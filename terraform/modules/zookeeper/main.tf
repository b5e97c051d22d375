data "aws_ami" "debian" {
  count       = var.ami_id == null ? 1 : 0
  most_recent = true
  owners      = ["136693071363"] # Debian's official AWS account

  filter {
    name   = "name"
    values = ["debian-12-amd64-*"]
  }
}

data "aws_subnet" "node" {
  count = 3
  id    = var.subnet_ids[count.index]
}

locals {
  ami_id = coalesce(var.ami_id, one(data.aws_ami.debian[*].id))
  nodes  = [0, 1, 2]

  kms_key_arn = coalesce(var.kms_key_arn, one(aws_kms_key.volumes[*].arn))

  # Fixed addresses (one network interface per node, created first) so every
  # node's zoo.cfg can list the whole ensemble before the instances exist.
  node_ips = aws_network_interface.node[*].private_ip

  connect_string = join(",", [for ip in local.node_ips : "${ip}:${var.client_port}"])
  url_query      = join("&", [for name, value in var.veltrix_url_options : "${name}=${urlencode(value)}"])
  veltrix_url    = "zookeeper://${local.connect_string}${var.chroot}${local.url_query == "" ? "" : "?${local.url_query}"}"
}

resource "aws_kms_key" "volumes" {
  count                   = var.kms_key_arn == null ? 1 : 0
  description             = "EBS volumes of the ${var.name} ZooKeeper ensemble"
  deletion_window_in_days = 30
  enable_key_rotation     = true
  policy                  = data.aws_iam_policy_document.kms.json
  tags                    = var.tags
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_iam_policy_document" "kms" {
  # In a key policy, Resource "*" means this key and nothing else; the account-root
  # statement is AWS's default key policy, keeping the key manageable while IAM decides use.
  #checkov:skip=CKV_AWS_109:key policy; "*" is this key only (AWS default key policy statement)
  #checkov:skip=CKV_AWS_111:key policy; "*" is this key only (AWS default key policy statement)
  #checkov:skip=CKV_AWS_356:key policy; "*" is this key only (AWS default key policy statement)
  statement {
    sid       = "AccountAdministration"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

resource "aws_security_group" "ensemble" {
  name        = "${var.name}-ensemble"
  description = "ZooKeeper ${var.name}: clients on the client port, peers on 2888/3888"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-ensemble" })
}

resource "aws_vpc_security_group_ingress_rule" "client_cidr" {
  for_each          = toset(var.client_cidr_blocks)
  security_group_id = aws_security_group.ensemble.id
  description       = "ZooKeeper clients"
  ip_protocol       = "tcp"
  from_port         = var.client_port
  to_port           = var.client_port
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "client_sg" {
  for_each                     = toset(var.client_security_group_ids)
  security_group_id            = aws_security_group.ensemble.id
  description                  = "ZooKeeper clients"
  ip_protocol                  = "tcp"
  from_port                    = var.client_port
  to_port                      = var.client_port
  referenced_security_group_id = each.value
}

resource "aws_vpc_security_group_ingress_rule" "peers" {
  for_each                     = { quorum = 2888, election = 3888, client = var.client_port }
  security_group_id            = aws_security_group.ensemble.id
  description                  = "ZooKeeper ${each.key} traffic between nodes"
  ip_protocol                  = "tcp"
  from_port                    = each.value
  to_port                      = each.value
  referenced_security_group_id = aws_security_group.ensemble.id
}

resource "aws_vpc_security_group_egress_rule" "peers" {
  for_each                     = { quorum = 2888, election = 3888 }
  security_group_id            = aws_security_group.ensemble.id
  description                  = "ZooKeeper ${each.key} traffic between nodes"
  ip_protocol                  = "tcp"
  from_port                    = each.value
  to_port                      = each.value
  referenced_security_group_id = aws_security_group.ensemble.id
}

resource "aws_vpc_security_group_egress_rule" "https" {
  for_each          = toset(var.egress_cidr_blocks)
  security_group_id = aws_security_group.ensemble.id
  description       = "HTTPS: package mirrors and the SSM agent"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_network_interface" "node" {
  count           = 3
  subnet_id       = var.subnet_ids[count.index]
  security_groups = [aws_security_group.ensemble.id]
  description     = "${var.name} node ${count.index + 1}"
  tags            = merge(var.tags, { Name = "${var.name}-${count.index + 1}" })
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

# Nodes get only the SSM agent's permissions: shell access through Session Manager,
# no SSH port open anywhere.
resource "aws_iam_role" "node" {
  name               = "${var.name}-node"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "ssm" {
  role       = aws_iam_role.node.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "node" {
  name = "${var.name}-node"
  role = aws_iam_role.node.name
  tags = var.tags
}

resource "aws_ebs_volume" "data" {
  count             = 3
  availability_zone = data.aws_subnet.node[count.index].availability_zone
  size              = var.data_volume_size_gb
  type              = "gp3"
  encrypted         = true
  kms_key_id        = local.kms_key_arn
  tags              = merge(var.tags, { Name = "${var.name}-${count.index + 1}-data" })
}

resource "aws_instance" "node" {
  count                = 3
  ami                  = local.ami_id
  instance_type        = var.instance_type
  iam_instance_profile = aws_iam_instance_profile.node.name
  ebs_optimized        = true
  monitoring           = true

  network_interface {
    network_interface_id = aws_network_interface.node[count.index].id
    device_index         = 0
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    encrypted   = true
    kms_key_id  = local.kms_key_arn
    volume_type = "gp3"
    volume_size = 16
  }

  user_data = templatefile("${path.module}/templates/node.sh.tftpl", {
    my_id       = count.index + 1
    node_ips    = local.node_ips
    client_port = var.client_port
  })
  user_data_replace_on_change = true

  tags = merge(var.tags, { Name = "${var.name}-${count.index + 1}" })

  lifecycle {
    ignore_changes = [ami]
  }
}

resource "aws_volume_attachment" "data" {
  count       = 3
  device_name = "/dev/sdf"
  volume_id   = aws_ebs_volume.data[count.index].id
  instance_id = aws_instance.node[count.index].id
}
