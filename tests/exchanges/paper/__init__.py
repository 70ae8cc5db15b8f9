"""The paper venue without a database: MemoryPaperStore, a scripted price path and a clock
the test moves. Every expected figure is worked out here by hand from the config
(taker 0.0005, maker 0.0002, slippage 2 bps, maintenance margin rate 0.005, starting
balance 10000 USDT, quantity step 0.000001, tick 0.01)."""
