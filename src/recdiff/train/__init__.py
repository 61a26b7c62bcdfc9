"""recdiff.train."""
