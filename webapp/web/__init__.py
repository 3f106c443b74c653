"""The edges users touch: pages, the JSON API and its OpenAPI document,
Socket.IO handlers, HTTP hygiene (rate limits, CORS, security headers),
JSON errors and the ``flask`` CLI.

Edges stay thin: they parse and refuse input, call :mod:`webapp.services`
(or a store for a plain read) and shape the answer.  Nothing below imports
this package.
"""
