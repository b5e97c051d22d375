"""Veltrix: one caching configuration client for many stores."""
__version__ = "0.1.0"
