"""Benchmarks, one script per service (`make bench-<service>`).

A package, so that mypy names the scripts `bench.<service>` and they do not
collide with the test packages `tests/<service>/`, which it names
`<service>`. Scripts put the repository root on sys.path and import their
helpers as `bench.<module>`.
"""
