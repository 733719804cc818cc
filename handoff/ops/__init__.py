"""Operations: Prometheus metrics, health endpoints, structured logs and the settings check.

Nothing here decides anything; it watches the processing loop (one call per committed
decision, one per dead letter; its tasks, restores and offsets) and reports.
"""
