-- The apply ledger: one row per `rulesctl apply` attempt, whatever its outcome; and what rulesctl
-- owns: every key it installed, with the hash of its definition as installed (for drift).
-- An apply that runs steps writes its row as 'started' (committed before the first step, with
-- its backend's pid) and turns it into 'applied' or 'failed' at the end; a row still 'started'
-- whose backend is gone (kill -9, a lost server) is marked 'interrupted' by the next apply.
CREATE SCHEMA IF NOT EXISTS rulesctl;
CREATE TABLE IF NOT EXISTS rulesctl.applies (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  started_at timestamptz NOT NULL,
  finished_at timestamptz DEFAULT clock_timestamp(),
  outcome text NOT NULL CONSTRAINT applies_outcome_check
    CHECK (outcome IN ('started', 'applied', 'no_change', 'refused', 'failed', 'interrupted')),
  policy_hash text NOT NULL,
  desired_hash text NOT NULL,
  tool_version text NOT NULL,
  git_commit text,
  applied_by text NOT NULL,
  os_user text,
  client_host text,
  statement_count integer NOT NULL,
  statements jsonb NOT NULL DEFAULT '[]',
  message text,
  backend_pid integer,
  git_dirty boolean             -- uncommitted changes in the rules directory; NULL: not a git checkout
);
-- A ledger made by an older rulesctl: the same table, brought up to date once.
DO $ledger$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'rulesctl.applies'::regclass
                 AND conname = 'applies_outcome_check' AND pg_get_constraintdef(oid) LIKE '%interrupted%') THEN
    ALTER TABLE rulesctl.applies DROP CONSTRAINT IF EXISTS applies_outcome_check,
      ADD CONSTRAINT applies_outcome_check
        CHECK (outcome IN ('started', 'applied', 'no_change', 'refused', 'failed', 'interrupted')),
      ALTER COLUMN finished_at DROP NOT NULL,
      ADD COLUMN IF NOT EXISTS backend_pid integer;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'rulesctl.applies'::regclass
                 AND attname = 'git_dirty' AND NOT attisdropped) THEN
    ALTER TABLE rulesctl.applies ADD COLUMN git_dirty boolean;
  END IF;
END
$ledger$;
CREATE TABLE IF NOT EXISTS rulesctl.managed_objects (
  key text PRIMARY KEY,
  definition_hash text NOT NULL,
  apply_id bigint REFERENCES rulesctl.applies (id),
  recorded_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
