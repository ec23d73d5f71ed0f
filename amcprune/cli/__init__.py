"""The ``amcprune`` command line: a thin wrapper over the Python API, one module per stage."""
