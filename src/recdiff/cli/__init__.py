"""recdiff.cli."""
