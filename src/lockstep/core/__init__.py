"""Pure building blocks: ids, canonical JSON, params, records, the filter grammar (stdlib only)."""
