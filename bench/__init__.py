"""Benchmarks: each prints JSON lines with the work size, the median and what was counted."""
