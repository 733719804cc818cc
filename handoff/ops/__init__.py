"""Operations: Prometheus metrics, health endpoints, structured logs and the settings check.

Nothing here decides anything; it watches the agents (one call per decision, one per dead
letter) and the Faust app (recovery, assignment, consumer offsets) and reports.
"""
