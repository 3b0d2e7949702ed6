"""Sentinel42."""
