"""The agent side of the mesh: hosting AgentScope agents behind `AgentService`, sessions, turns, models.

Imports AgentScope; the shared package (`meshscope.*` outside `meshscope.services`) must not import this.
"""
