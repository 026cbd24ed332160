"""Wire and file formats every part reads: JSON into msgspec types, YAML errors, the newc cpio
format.
"""
