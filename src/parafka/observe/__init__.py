"""What the running consumer tells operators: health, metrics, the monitor, advice, tracing, the
lag view."""
