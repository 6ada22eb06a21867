"""The control loop and what it drives: the public ParallelConsumer, settings, outputs, the
retry topic, pacing, operator steering, the share-group loop, waits."""
