"""The demo: the example pipelines end to end against the local sandbox (``python -m ...demo``)."""
