"""Alerts on the print: the evaluate process judges each shard's rules at the stream's trades."""
