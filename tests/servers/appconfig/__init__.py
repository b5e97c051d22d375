"""A wire-faithful AWS AppConfig (control plane) + AppConfigData test server.

Run it as a process: ``python -m tests.servers.appconfig --host 127.0.0.1 --port 18600``.
See ``docs/stores/appconfig.md`` for what it does not reproduce.
"""
