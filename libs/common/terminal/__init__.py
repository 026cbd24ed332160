"""What a person at a terminal sees: progress bars and human-readable sizes."""
