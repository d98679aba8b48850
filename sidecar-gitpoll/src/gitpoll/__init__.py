"""gitpoll: keep a directory in sync with a git repository, atomically."""

# The one place the version is written (pyproject.toml reads it from here):
# reading it back through importlib.metadata would cost ~1 MiB of memory.
__version__ = "0.1.0"
