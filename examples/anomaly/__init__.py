"""A web-request anomaly detector: a scikit-learn model scoring micro-batches of events."""
