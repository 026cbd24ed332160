"""The events as a product: the catalog of every subject with its payload and publisher, and
the AsyncAPI document made from it (served by the registry, kept in docs/asyncapi.json)."""
