"""Test fixtures' building blocks: real servers and real processes, started
on free loopback ports and stopped by the PID they were given."""
