"""lockstep server: the HTTP API over a store, for a team."""
