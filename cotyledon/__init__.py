"""cotyledon: supervise long-running services."""
