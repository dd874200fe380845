"""Environments in a worker: the directory of environment actors, each one's state and
pre-encoded payloads, and propagation measurement."""
