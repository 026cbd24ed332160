"""The HTTP edge every service shares: the app factory (app.py), typed errors mapped to
statuses (errors.py), msgspec bodies and the body limit (bodies.py), the OpenAPI document
(openapi.py), token auth (auth.py), and where each service listens (listeners.py).
"""
