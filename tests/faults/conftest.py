"""Fault-injection tests: a real `wolfpack up` whose processes are killed while it works."""

from __future__ import annotations


# The fresh full render (overlayd's tests) and the busybox image tree (the builder's tests)
# are shared with those tests rather than written twice.
