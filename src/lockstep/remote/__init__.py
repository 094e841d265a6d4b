"""Clients of a lockstep server: the metadata store over HTTP."""
