"""Bytes by content: BLAKE3 hashing now, the content-addressed object store next."""
