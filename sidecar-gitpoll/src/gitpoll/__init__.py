"""gitpoll: keep a directory in sync with a git repository, atomically."""
