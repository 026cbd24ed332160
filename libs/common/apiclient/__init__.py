"""Clients of the services' HTTP APIs: where each service is, which token and CA to use, typed
errors back.
"""
