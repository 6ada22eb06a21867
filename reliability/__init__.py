"""Reliability scenarios: crash loop, rebalance churn, connection loss, memory (issue 6)."""
