"""`make fuzz`: generated requests against every edge of a real mesh (fuzz.run)."""
