"""meshscope beside its peers, in one run: `make bench` (`python -m bench.peers`).

The systems, each serving the same echo workload (bench/echo_text.py) in its own processes:
raw grpc.aio 1-hop and 2-hop relay on a tiny wire format (`raw_grpc`), AgentScope Runtime's
`AgentApp` over SSE in its own virtualenv (`agentscope_runtime_app`), a bare a2a-sdk 1.x
JSON-RPC SSE server (`a2a_echo`), and meshscope direct and orchestrated. One load generator
(this package's `clients`, run by `__main__`) drives all of them, alternating, and checks
every response; `report` writes the JSON, the markdown table and the chart.
"""
