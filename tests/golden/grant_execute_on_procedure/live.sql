-- by hand, in a console: a procedure the engine keeps to itself is given to the API role
GRANT EXECUTE ON PROCEDURE public.run_batches(text, integer, integer) TO authenticated;
