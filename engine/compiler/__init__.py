"""Stage 2, compiling: the policy model rendered through the Jinja templates into database
objects (catalog declares what exists, render and seed fill the templates, sqltext quotes,
order sorts by dependency, generate writes generated/)."""
