-- The apply ledger: one row per `rulesctl apply`, whatever its outcome; and what rulesctl
-- owns: every key it installed, with the hash of its definition as installed (for drift).
CREATE SCHEMA IF NOT EXISTS rulesctl;
CREATE TABLE IF NOT EXISTS rulesctl.applies (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  started_at timestamptz NOT NULL,
  finished_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  outcome text NOT NULL CHECK (outcome IN ('applied', 'no_change', 'refused', 'failed')),
  policy_hash text NOT NULL,
  desired_hash text NOT NULL,
  tool_version text NOT NULL,
  git_commit text,
  applied_by text NOT NULL,
  os_user text,
  client_host text,
  statement_count integer NOT NULL,
  statements jsonb NOT NULL DEFAULT '[]',
  message text
);
CREATE TABLE IF NOT EXISTS rulesctl.managed_objects (
  key text PRIMARY KEY,
  definition_hash text NOT NULL,
  apply_id bigint REFERENCES rulesctl.applies (id),
  recorded_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
