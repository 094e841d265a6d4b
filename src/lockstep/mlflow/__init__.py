"""MLflow compatibility: MLflow's REST API over a lockstep store, and the plugins that let
the stock MLflow client write into lockstep runs with no server."""
