"""Tiny random models and hub stand-ins for tests, demos and benches."""
