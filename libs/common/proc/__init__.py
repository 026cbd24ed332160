"""Processes: children that die with their parent, waiting for any process, reaping children."""
