"""The content-addressed store: blobs, their verification, what references them, garbage collection
and fsck.
"""
