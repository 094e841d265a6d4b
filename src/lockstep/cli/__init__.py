"""The ``lockstep`` command line: thin commands over the workspace, rendered with Rich."""
