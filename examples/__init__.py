"""Runnable parafka examples: the seeds' workloads, each tested in tests/integration."""
