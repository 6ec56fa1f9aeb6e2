"""The orchestrator: discovers agents, balances across replicas, runs pipelines, streams every step."""
