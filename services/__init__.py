"""The agent side of meshscope: the shared runtime and the seed's example agents."""
