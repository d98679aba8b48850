"""Shared plumbing for the Sidecar Patterns services.

Only concerns that every service has in exactly the same form live here:
flags with environment-variable twins (`cli`), logging set-up (`logsetup`),
the health/metrics HTTP server (`ops_http`) and signal handling
(`lifecycle`). Anything service-specific stays in the service.
"""
