"""`make chaos`: faults injected into a real mesh under load, and the books checked (chaos.run)."""
