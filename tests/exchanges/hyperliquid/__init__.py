"""The Hyperliquid adapter against a local fake of the venue that the real SDK talks to.

No database. Each test gets its own fake server, a main account funded with 10,000 USDC and
an agent wallet approved for it, and a runtime on a fake clock whose ``sleep`` only moves
the clock (backoff and rate-limit waits cost no time).
"""
