"""The NATS layer: the connection, its stream and consumers, typed KV buckets and their watches,
the embedded server and its token.
"""
