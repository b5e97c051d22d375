"""Store adapters, one module per store. Import them through :mod:`veltrix.registry`."""
