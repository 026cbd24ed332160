"""Warewulf's rules for nodes and profiles: merging, validation, merge patches, ranges, nodes.conf,
the default profile.
"""
