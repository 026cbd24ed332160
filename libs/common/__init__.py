"""Shared library of wolfpack: models, merge rules, validation, NATS layer, content store."""
