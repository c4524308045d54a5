"""Interop tests with Python Consul clients (py-consul)."""
