"""The HTTP edge every service shares: the app factory, errors mapped to statuses, bodies, auth,
listeners.
"""
