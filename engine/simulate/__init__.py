"""`rulesctl simulate`: replay a workload under the baseline and the proposed policy on the real
engine in virtual time (`rulesctl.now`), each in its own scratch database, and compare them.

    workload.py  arrivals (file, synthetic from the policy)      staff.py    the people
    scratch.py   scratch databases through `rulesctl apply`       replay.py   the virtual-time replay
    sql/replay.sql the driver inside the database                 metrics.py  the figures, from SQL
    run.py       the whole run, two policies in parallel         report/     text, JSON, Markdown, HTML
"""
