"""Encoders kept out of the main path (see each module)."""
