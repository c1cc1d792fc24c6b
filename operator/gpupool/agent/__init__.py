"""The node agent: NVML sampling, pod attribution, GPUNode publishing, Prometheus metrics.

Entry points: `gpupool agent` (command.py) for the DaemonSet and fake nodes;
`gpupool.agent.fake.FakeAgents` / `run_fake_agents` to run fake agents of many
nodes from Python (the demo, the tests). Kept free of imports so the CLI starts fast.
"""
