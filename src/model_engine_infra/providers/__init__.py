"""Wiring only: which factory builds each component on each cloud. No behaviour lives here."""
