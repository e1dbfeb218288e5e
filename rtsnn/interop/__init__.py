"""Interchange with other simulators and chips (NIR)."""
