"""Background work: periodic jobs run under a database lease, so one node runs each at a time."""
