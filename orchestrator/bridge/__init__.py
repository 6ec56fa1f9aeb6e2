"""The A2A-over-HTTP bridge: every pipeline and agent of the mesh as an A2A agent.

Built on a2a-sdk 1.x (its request handler, route factories, task updater and database task
stores); one A2A task is one orchestrator run. `meshscope serve bridge` runs it
(`meshscope.orchestrator.bridge.entry`); docs/bridge.md is the user's guide. Modules, one job each:

  config     BridgeSettings from MESHSCOPE_BRIDGE_* (and REDIS_URL, MESHSCOPE_ORCHESTRATOR)
  catalog    the orchestrator's agents and pipelines, reused for a TTL
  cards      the A2A card of each target
  parts      A2A parts and messages to the mesh's and back, without loss
  executor   an A2A task as an orchestrator run (a2a-sdk's AgentExecutor)
  stores     the task, event and push-config stores (SQLite or PostgreSQL)
  security   body size, API keys, rate limits, push-URL policy
  app        the ASGI application: routes per target, the shared request handler
  entry      the process
"""
