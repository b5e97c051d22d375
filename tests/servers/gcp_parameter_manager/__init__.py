"""A wire-faithful GCP Parameter Manager v1 test server (REST + gRPC), run as its own process.

It also serves the Secret Manager v1 API on the same ports (one shared secret state), so
the secret references in parameter versions resolve against secrets the tests create.

python -m tests.servers.gcp_parameter_manager --host 127.0.0.1 --rest-port N --grpc-port M [--token T]
"""
