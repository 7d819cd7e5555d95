"""rulesctl: the Assignment Engine & SLA, written as policy as code."""

__version__ = "0.1.0"
