-- by hand, in a console: the staff visibility rule is gone
DROP POLICY staff_profiles_visible ON public.staff_profiles;
