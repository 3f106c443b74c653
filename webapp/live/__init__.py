"""The stream process's work (``jobs/stream.py``): one leader holds the provider connection,
aggregates its trades (:mod:`webapp.core.tape`), pushes ``trade`` events to
the rooms somebody listens to, and hands closed bars to the minute tick.
"""
