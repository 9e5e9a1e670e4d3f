"""The explanation service and its client.

``app``     the HTTP service (FastAPI): predictions and explanations of a target for API keys
            with quotas and rate limits, strict validation, output options that operators use
            as defences, an SQLite query log and an ``/admin`` summary.
``detect``  extraction-pattern warnings computed on the logged queries of each key.
``client``  :func:`http_oracle`: the attacker's :class:`modelrecon.oracle.Oracle` over HTTP.
``audit``   run the applicable attacks against a service and write what leaked (HTML + JSON).
"""
