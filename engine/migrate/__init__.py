"""Stage 3, migrating: the live database read from its catalogs (introspect, queries/), the
desired objects read back the same way (desired), both compared (diff) into ordered steps
with hazards (steps, plan), applied under a lock and recorded (apply, ledger), and shown
(report)."""
