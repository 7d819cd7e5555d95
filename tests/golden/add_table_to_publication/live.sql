-- by hand: realtime stops carrying assignments
ALTER PUBLICATION supabase_realtime DROP TABLE public.assignments;
