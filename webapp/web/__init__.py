"""The edges users touch, one module per resource or channel.

Pages (:mod:`pages`, :mod:`auth` for sign-in), the JSON API as one blueprint
per resource (:mod:`stocks`, :mod:`symbols`, :mod:`alerts`, :mod:`health`,
:mod:`scanner`, :mod:`rules`, :mod:`webhooks`, :mod:`watchlists`,
:mod:`openapi`; declared through :mod:`apispec`, shared parameters in
:mod:`params`), Socket.IO (:mod:`realtime`), HTTP hygiene (:mod:`http`: rate
limits, CORS, security headers), JSON errors (:mod:`errors`) and the
``flask`` CLI (:mod:`cli`).

Edges stay thin: they parse and refuse input, call the domain's module in
:mod:`webapp.services` (or a store for a plain read) and shape the answer.
Nothing below imports this package.
"""
