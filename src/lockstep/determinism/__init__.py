"""Seeding, framework determinism flags and (later) tensor fingerprints."""
