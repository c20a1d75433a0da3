"""Where simulated documents go: NDJSON files, a live OpenSearch index, or both."""
