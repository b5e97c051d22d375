"""A wire-faithful GCP Secret Manager v1 test server (REST + gRPC), run as its own process.

python -m tests.servers.gcp_secret_manager --host 127.0.0.1 --rest-port N --grpc-port M [--token T]
"""
