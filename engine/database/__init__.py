"""The database itself: connections (connect), the embedded local cluster (local) and the
runtime's invariants read from the tables (invariants). Imports only the standard library
at package level: engine.database.local runs under a bare system Python too."""
