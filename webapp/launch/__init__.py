"""``make run``'s launcher: embedded Redis and Postgres when no URL is set,
the migrations, then the Procfile's processes.  The test suite and the
benchmarks start their embedded servers through the same helpers.
"""
