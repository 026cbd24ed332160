"""Secrets and trust: the API token and its rotation, TLS and certificates, masking secret
fields."""
