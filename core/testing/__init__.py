"""Test helpers shipped with Veltrix: the adapter conformance suite."""
