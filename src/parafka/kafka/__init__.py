"""The only floor that wraps confluent-kafka for the engine: the seam's adapter, client
configuration, librdkafka log folding, the group-lag query."""
