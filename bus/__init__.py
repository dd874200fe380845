"""The bus between the store and the streamer workers: the message envelope, the nng
addresses, the store's publisher and snapshot server, and a worker's subscriber with its
sequence tracking. It imports no other project package (docs/ARCHITECTURE.md)."""
