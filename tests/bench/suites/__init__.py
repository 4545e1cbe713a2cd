"""The bench suites: each starts what it measures, runs it and adds its figures to ``out``."""
