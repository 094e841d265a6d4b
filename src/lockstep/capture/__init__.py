"""One small gatherer per fact a run depends on; each returns a value or Unavailable(reason)."""
