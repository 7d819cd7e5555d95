-- Every row of one policy table, as jsonb (the table name is quoted by the caller).
SELECT to_jsonb(t) AS row FROM {table} t
