provider "aws" {
  region = var.region
}

module "zookeeper" {
  source = "../../modules/zookeeper"

  name               = "veltrix-example-zk"
  vpc_id             = var.vpc_id
  subnet_ids         = var.subnet_ids
  client_cidr_blocks = var.client_cidr_blocks
  chroot             = "/veltrix/example"
  tags               = { "managed-by" = "terraform", "example" = "veltrix-zookeeper" }
}
