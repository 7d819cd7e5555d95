"""`rulesctl simulate`: a workload replayed under two policies (engine/simulate)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from engine.cli.common import (
    build_or_exit,
    database_option,
    resolve_database_url,
    rules_option,
    run_or_exit,
    scratch_option,
    scratch_server,
)


@click.command()
@rules_option
@click.option("--baseline", "baseline_dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="The policy to compare with (e.g. a checkout of the main branch's rules/).")
@click.option("--baseline-live", is_flag=True, help="Compare with the policy --database-url runs (its ledger's "
              "last apply, read back from that git commit).")
@click.option("--workload", "workload_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Arrivals as CSV or JSONL: arrived_at, work_item_id, work_item_type, priority, "
                   "required_skills, target_unit_id?, handling_minutes?.")
@click.option("--synthetic", is_flag=True, help="Arrivals generated from the policy (needs --days).")
@click.option("--from-history", "history", metavar="DAYS", help="The last DAYS days (e.g. 30d) of arrivals, "
              "handling times and staff of --database-url (read-only).")
@click.option("--days", type=click.IntRange(1, 366), help="Synthetic: how many days of arrivals; with --workload: "
              "how long to replay (default: until the last arrival's handling time has passed).")
@click.option("--per-day", type=click.IntRange(1), default=3300, show_default=True,
              help="Synthetic: arrivals per day for the whole organisation.")
@click.option("--staff", "staff_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="People as CSV: id, unit, role, skills, wip_limit, leave (default: sized for the load).")
@click.option("--seed", type=int, default=11, show_default=True, help="Same inputs and seed, same figures.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown", "html"]), default="text",
              show_default=True, help="markdown suits a pull-request comment; html is one self-contained page.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), help="Write the report here.")
@click.option("--keep", is_flag=True, help="Keep the scratch databases (rulesctl_sim_*) to look at afterwards; "
              "with the private cluster, keep it running and print its URL and how to stop it.")
@scratch_option
@database_option
def simulate(rules_dir: Path, baseline_dir: Path | None, baseline_live: bool, workload_file: Path | None,
             synthetic: bool, history: str | None, days: int | None, per_day: int, staff_file: Path | None,
             seed: int, fmt: str, out_file: Path | None, keep: bool, scratch_url: str | None,
             database_url: str | None) -> None:
    """Replay a workload under the proposed policy (--rules) and a baseline on the real engine.

    Each policy is installed by `rulesctl apply` into its own scratch database
    (rulesctl_sim_*) in a private throwaway PostgreSQL cluster, started in a temp directory
    and removed at the end (--scratch-url URL puts them on that server instead). The
    database of --database-url is only read (--from-history, --baseline-live). Arrivals
    call auto_assign, items complete after their handling time, the SLA sweep runs on its
    jobs.yaml schedule, all in virtual time. Reports breaches, waits, queues and
    utilisation side by side.
    """
    import functools
    import tempfile

    from engine.database.connect import redact
    from engine.simulate.live import live_rules
    from engine.simulate.progress import TerminalProgress
    from engine.simulate.report import render
    from engine.simulate.run import PolicyUnderTest, WorkloadSpec
    from engine.simulate.run import simulate as run_simulation
    if baseline_dir and baseline_live:
        click.echo("error: give one baseline: --baseline DIR or --baseline-live", err=True)
        sys.exit(1)
    if [workload_file is not None, synthetic, history is not None].count(True) != 1:
        click.echo("error: give one workload: --workload FILE, --synthetic --days N or --from-history DAYS", err=True)
        sys.exit(1)
    history_days = int(history.removesuffix("d")) if history and history.removesuffix("d").isdigit() else None
    if history is not None and not history_days:
        click.echo(f"error: --from-history: a number of days such as 30d, not {history!r}", err=True)
        sys.exit(1)
    if synthetic and days is None:
        click.echo("error: --synthetic needs --days N (how many days of arrivals to generate)", err=True)
        sys.exit(1)
    # Only read, and only resolved when needed: a synthetic run starts no project cluster.
    url = functools.cache(lambda: resolve_database_url(database_url, rules_dir))
    live_dir = tempfile.TemporaryDirectory(prefix="rulesctl-live-")
    if baseline_live:
        baseline_dir = run_or_exit(lambda: live_rules(url(), rules_dir, Path(live_dir.name)))
    subjects = [PolicyUnderTest(label, path, *build_or_exit(path))
                for label, path in (("baseline", baseline_dir), ("proposed", rules_dir)) if path is not None]
    live_dir.cleanup()
    progress = TerminalProgress(sys.stderr) if sys.stderr.isatty() else None
    spec = WorkloadSpec(workload_file, days, per_day, staff_file=staff_file,
                        history_url=url() if history_days else None, history_days=history_days)
    server = scratch_server(scratch_url, url)
    if progress:
        click.echo("scratch databases: " + (f"on {redact(server)}" if server else "a throwaway PostgreSQL cluster "
                   "in a temp directory, removed at the end"), err=True)
    result = run_or_exit(lambda: run_simulation(server, subjects, spec, seed, keep=keep, progress=progress))
    if progress:
        progress.done()
    if result.cluster:
        click.echo(f"kept the scratch cluster: {result.cluster.url} (data directory {result.cluster.data_dir}); "
                   f"stop it with `rulesctl local stop --dir {result.cluster.base_dir}`, then delete that "
                   "directory", err=True)
    for label, kept in result.databases.items():     # the private cluster's URLs have no password
        click.echo(f"kept the {label} scratch database: {kept if result.cluster else redact(kept)}", err=True)
    report = render(result, fmt)
    if out_file:
        out_file.write_text(report)
        click.echo(f"report written to {out_file}", err=True)
    else:
        click.echo(report, nl=False)
