"""Pure logic with no I/O and no confluent_kafka: records, the ledger and its entries, ordering,
offsets, the commit-metadata codec, flow, retry timing, rates, dead-letter headers, statistics
and lag arithmetic."""
