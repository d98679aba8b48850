"""httpd-adapter: Apache httpd's mod_status page as Prometheus metrics."""

__version__ = "0.1.0"
