"""The pure core: plain functions and records, data in and values out.

Nothing here imports Redis, SQL or HTTP, and nothing reads the clock: the
time is always an argument.  That is what lets the same code run in the
worker, the benchmark and property tests.
"""
