"""`offerhub chaos` (issue 16): a seeded, bounded reliability run on its own embedded stack.

`run.py` drives it; `generator.py` makes the marketplace activity, `faults.py` the sandbox
faults, `processes.py` the kills and restarts, `checks.py` the end-of-run proofs and
`report.py` the figures. See docs/chaos.md.
"""
