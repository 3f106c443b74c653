"""Backfill: a newly tracked symbol's recent history, fetched from its provider (:mod:`.runner`)."""
