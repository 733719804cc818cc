"""Topology and wiring: the Faust app, its topics, codecs and tables."""
