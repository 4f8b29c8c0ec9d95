"""HTTP client integrations, thin over :mod:`staplecheck.tls`: urllib3 pools
(``_urllib3``) and the requests adapter (``_requests``).
Internal: import the public names from :mod:`staplecheck`.
"""
