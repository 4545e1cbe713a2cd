"""`make bench`: reproducible load measurements with same-run baselines (not collected by
pytest). See README "Performance"."""
