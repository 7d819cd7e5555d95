"""Stage 1, the policy: rules/*.yaml read with positions (load), checked against the JSON
Schemas and the semantic rules (validate, checks; errors as file:line:col), and turned into
frozen dataclasses (model, calendar_days)."""
