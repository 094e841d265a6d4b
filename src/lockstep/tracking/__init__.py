"""The Run object, its non-blocking metric writer, liveness and the Python tracking API."""
