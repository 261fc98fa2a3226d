"""cotyledon.wsgi: a pre-fork WSGI server that runs as one more service of a ServiceManager."""
