"""Parts of bench/agents.py: ``base`` (shared constants, the population), ``inprocess``
(decision time, tokens, market-data calls), ``workers`` (the processes and Redis),
``profiling`` (py-spy), ``capacity`` (agents per worker). The script parses and runs them."""
