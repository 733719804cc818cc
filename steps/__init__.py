"""Pure processing steps: a record and the state it finds in, to the records and writes it leads to.

Nothing here does I/O. The loop in `streams/loop.py` feeds batches to these steps and applies
what they return in one Kafka transaction per task.
"""
