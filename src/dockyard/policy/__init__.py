"""Pure policy evaluators (DESIGN.md decision 7): retention plans, immutability, naming, quotas.

Each takes rows and names and returns a verdict that says which rule decided and why; none does
I/O, so each is tested as a table of cases.
"""
