"""Pydantic models of every topic in the wire contract (docs: ../shared/spec/contract.md)."""
