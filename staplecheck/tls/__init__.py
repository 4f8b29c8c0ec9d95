"""TLS glue over pyOpenSSL: ask for a staple, judge it in OpenSSL's callback, check
the host name, run the revocation fallback after the handshake, and log verdicts.

``_pyopenssl`` (contexts and connections), ``_sslcontext`` (an ``ssl.SSLContext``
look-alike for clients that take one), ``_hostname`` and ``_alabel`` (RFC 6125
names), ``_hostpolicy`` (a policy per host) and ``_log`` (the verdict log).
Internal: import the public names from :mod:`staplecheck`.
"""
