"""httpd-adapter: Apache httpd's mod_status page as Prometheus metrics."""
