"""Day-to-day operations on a running engine: status, staff import, reports."""
