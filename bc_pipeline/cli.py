"""The `bc-pipeline` command: run the sync through Dagster, serve the sandbox, diagnose a setup."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Iterator, Optional, Sequence

from bc_pipeline.settings import DEFAULT_HOME, PROJECT_DIR, SettingsError, load_settings


SANDBOX_IPAAS_LIMIT = 12000
SANDBOX_IPAAS_WINDOW_SECONDS = 60


def ensure_dagster_home() -> Path:
    """Runs are recorded in a project-local DAGSTER_HOME unless the user set one.

    The project-local one always holds the repo's dagster.yaml (kept in step when it changes); a
    DAGSTER_HOME of the user's own only gets it when it has none.
    """
    own = os.environ.get("DAGSTER_HOME")
    home = Path(own or DEFAULT_HOME / "dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    source = PROJECT_DIR / "dagster.yaml"
    target = home / "dagster.yaml"
    if source.exists() and (not target.exists() or (not own and target.read_bytes() != source.read_bytes())):
        shutil.copyfile(source, target)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


@contextlib.contextmanager
def services(scale: float, *, force_sandbox: bool = False) -> Iterator[Optional[object]]:
    """The configured services, or the local sandbox when no Business Central credentials are set."""
    settings = load_settings()
    if settings.has_bc_credentials and not force_sandbox:
        yield None
        return
    from bc_pipeline.sandbox.instances import claim
    from bc_pipeline.sandbox.launcher import SandboxConfig, start_sandbox

    print("No Business Central credentials configured (BC_TENANT_ID, BC_CLIENT_ID, BC_CLIENT_SECRET, "
          "BC_COMPANY_NAME, BC_ENVIRONMENT): starting the local sandbox.", flush=True)
    started = time.monotonic()
    handle = start_sandbox(
        SandboxConfig(
            scale=scale,
            state_dir=settings.home / "sandbox",
            ipaas_rate_limit=SANDBOX_IPAAS_LIMIT,
            ipaas_rate_window_seconds=SANDBOX_IPAAS_WINDOW_SECONDS,
            # BC's server-side "Max Page Size" lowered, so a default-scale run reads the large services
            # (orders, their lines, inventory) in several pages each, following @odata.nextLink.
            max_page_size=250,
        )
    )
    print(f"Sandbox ready at {handle.base_url} in {time.monotonic() - started:.1f}s.", flush=True)
    # The stand-in's iPaaS.com allows more than the 500/60 s default; the pipeline uses what it allows
    # unless the user set a throttle of their own.
    # A new sandbox is an empty iPaaS.com: links and hashes from an earlier sandbox would be lies. So each
    # sandbox gets a state file of its own; those of sandboxes still running elsewhere are left alone.
    instance = claim(settings.home / "sandbox" / "instances")
    env = {
        "BC_PIPELINE_STATE_URL": f"sqlite:///{instance.state_file}",
        "IPAAS_THROTTLE_LIMIT": str(SANDBOX_IPAAS_LIMIT),
        "IPAAS_THROTTLE_SECONDS": str(SANDBOX_IPAAS_WINDOW_SECONDS),
        **{k: v for k, v in os.environ.items() if k in ("IPAAS_THROTTLE_LIMIT", "IPAAS_THROTTLE_SECONDS", "BC_PIPELINE_STATE_URL")},
        **handle.env(),
    }
    previous = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield handle
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        handle.stop()
        instance.release()


def cmd_run(args: argparse.Namespace) -> int:
    from bc_pipeline.runner import EXIT_RUN_FAILED, refused_credentials, run_job, summary_table

    ensure_dagster_home()
    if args.dry_run:
        from bc_pipeline.defs.preview import run_preview

        with services(args.scale, force_sandbox=args.sandbox):
            code, run_id, _ = run_preview(args.select or None, full_refresh=args.full_refresh)
        print(f"Preview run {run_id} recorded in {os.environ['DAGSTER_HOME']} (open it with `make dev`).")
        return code
    job = "extract_business_central" if args.extract_only else "sync_to_ipaas"
    with services(args.scale, force_sandbox=args.sandbox):
        refused = refused_credentials()
        for line in refused:
            print(line, file=sys.stderr)
        if refused:
            return EXIT_RUN_FAILED
        # Dagster's own log (stack traces included) goes to the run's event log; --verbose prints it here too.
        outcome = run_job(job, args.select or None, full_refresh=args.full_refresh, max_concurrent=args.max_concurrent,
                          log_level="INFO" if args.verbose else "CRITICAL", progress=None if args.verbose else sys.stderr)
    if outcome.extracts or outcome.loads:
        print(summary_table(outcome))
    print(f"Run {outcome.run_id} recorded in {os.environ['DAGSTER_HOME']} (open it with `make dev`).")
    for line in outcome.failure_lines():
        print(line, file=sys.stderr)
    return outcome.exit_code


def cmd_doctor(args: argparse.Namespace) -> int:
    from bc_pipeline.doctor import diagnose, render

    if args.sandbox:
        with services(args.scale, force_sandbox=True):
            findings = diagnose(check_ipaas=not args.skip_ipaas)
    else:
        findings = diagnose(check_ipaas=not args.skip_ipaas)
    print(render(findings))
    return 0 if all(f.ok for f in findings) else 1


def cmd_sandbox(args: argparse.Namespace) -> int:
    from bc_pipeline.sandbox.launcher import SandboxConfig, serve_forever

    settings = load_settings()
    # The limits `bc-pipeline run` gives its own sandbox; the printed exports carry them to a run in another shell.
    serve_forever(SandboxConfig(port=args.port, scale=args.scale, seed=args.seed, state_dir=settings.home / "sandbox",
                                ipaas_rate_limit=SANDBOX_IPAAS_LIMIT,
                                ipaas_rate_window_seconds=SANDBOX_IPAAS_WINDOW_SECONDS))
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    """`dagster dev` with the project's DAGSTER_HOME, against the sandbox when no credentials are set."""
    from bc_pipeline import dev

    try:
        dev.check_port(args.port)  # before a sandbox starts: a busy port fails in a second, not never
    except dev.PortBusy as busy:
        print(f"bc-pipeline dev: {busy}", file=sys.stderr)
        return 1
    home = ensure_dagster_home()
    with services(args.scale):
        return dev.run(args.port, PROJECT_DIR / "workspace.yaml", home)


def cmd_daemon(args: argparse.Namespace) -> int:
    """`dagster-daemon run` for this project's code location and DAGSTER_HOME, its sensor loop every second."""
    from bc_pipeline import daemon

    ensure_dagster_home()
    return daemon.main(["-w", str(args.workspace)])


def cmd_dead_letters(args: argparse.Namespace) -> int:
    """The records a service refused, with the service's error, until they land; or retry / discard them now."""
    from bc_pipeline import dead_letters
    from bc_pipeline.arguments import collection
    from bc_pipeline.state.database import engine_for

    settings = load_settings()
    engine = engine_for(settings.state_database_url)
    slug = collection(args.collection).slug if args.collection else None
    action = getattr(args, "action", None)
    if action == "discard" and not (slug or args.ids or args.all):
        print("bc-pipeline dead-letters discard: say which: --collection C, --id X or --all", file=sys.stderr)
        return 2
    letters = dead_letters.chosen(engine, slug, getattr(args, "ids", None))
    if action is None:
        print(dead_letters.table(letters))
        return 0
    if not letters:
        print("No dead letters" + (" match" if slug or args.ids else "") + ".")
        return 0
    ensure_dagster_home()
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        if action == "discard":
            dead_letters.discard(engine, letters, instance)
            return 0
        settings.require_bc()  # a retry goes to the services the dead letters came from: no sandbox of its own
        settings.require_ipaas()
        return dead_letters.retry(engine, letters, instance)


def cmd_webhooks(args: argparse.Namespace) -> int:
    from bc_pipeline.webhooks import serve

    serve(load_settings(), host=args.host, port=args.port, ssl_certfile=args.certfile, ssl_keyfile=args.keyfile)
    return 0


def cmd_webhook_subscriptions(args: argparse.Namespace) -> int:
    from bc_pipeline.webhooks.subscriptions import run_subscriptions_command

    return run_subscriptions_command(args.action, load_settings().require_bc())


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bc-pipeline", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the sync through Dagster, then print a summary")
    run.add_argument("--extract-only", action="store_true", help="only extract from Business Central (no iPaaS.com)")
    run.add_argument("--select", nargs="*", metavar="ENTITY", help="entities to run (default all), e.g. customers items")
    run.add_argument("--full-refresh", action="store_true", help="ignore incremental watermarks and read everything")
    run.add_argument("--dry-run", action="store_true", help="preview: read and map as usual, show what would be "
                     "created, updated (old -> new), left unchanged or refused; write nothing")
    run.add_argument("--sandbox", action="store_true", help="use the local sandbox even if credentials are set")
    run.add_argument("--scale", type=float, default=1.0, help="sandbox data scale when the sandbox is used (default 1)")
    run.add_argument("--max-concurrent", type=_positive_int, metavar="N",
                     help="steps at once, each in a process of its own, e.g. services read side by side (default "
                     "CONCURRENT_CONNECTIONS); 1: one at a time, in this process")
    run.add_argument("--verbose", action="store_true",
                     help="print Dagster's whole log here (every event, stack traces) instead of progress lines")
    run.set_defaults(func=cmd_run)

    doctor = sub.add_parser("doctor", help="check settings, token, company, every web service and iPaaS.com")
    doctor.add_argument("--sandbox", action="store_true", help="diagnose against the local sandbox")
    doctor.add_argument("--skip-ipaas", action="store_true", help="do not check iPaaS.com")
    doctor.add_argument("--scale", type=float, default=0.1, help=argparse.SUPPRESS)
    doctor.set_defaults(func=cmd_doctor)

    sandbox = sub.add_parser("sandbox", help="serve the Entra ID, Business Central and iPaaS.com stand-ins over HTTPS")
    sandbox.add_argument("--port", type=int, default=8443, help="HTTPS port to listen on (default 8443; 0 picks a free one)")
    sandbox.add_argument("--scale", type=float, default=1.0,
                         help="multiplies the seeded customers (300), items (400) and sales orders (1,000) (default 1)")
    sandbox.add_argument("--seed", type=int, default=365, help="random seed of the data: the same seed, the same records (default 365)")
    sandbox.set_defaults(func=cmd_sandbox)

    dead = sub.add_parser("dead-letters", help="list the records a service refused, with its error; retry or discard them")
    dead.add_argument("--collection", help="only this collection (its asset name, e.g. product_to_ipaas)")
    dead.set_defaults(func=cmd_dead_letters, action=None)
    dead_sub = dead.add_subparsers(dest="action", metavar="{retry,discard}")
    for action, text in (("retry", "send the dead letters again now (default every one), a Dagster run per collection"),
                         ("discard", "remove dead letters: the next run does not send them again")):
        act = dead_sub.add_parser(action, help=text)
        act.add_argument("--collection", default=argparse.SUPPRESS,
                         help="only this collection (its asset name, e.g. product_to_ipaas)")
        act.add_argument("--id", dest="ids", action="append", metavar="ID",
                         help="only the record with this id (the list's `id`); repeat for several")
        if action == "discard":
            act.add_argument("--all", action="store_true", help="every dead letter of every collection")

    from bc_pipeline.manual_sync import add_sync_arguments, run_sync_command

    sync = sub.add_parser("sync", help="Manual Sync: queue records by External ID or iPaaS.com ID, or show --status")
    add_sync_arguments(sync)
    sync.set_defaults(func=lambda a: run_sync_command(a, load_settings()))

    webhooks = sub.add_parser("webhooks", help="the webhook receiver for iPaaS.com and Business Central")
    webhooks_sub = webhooks.add_subparsers(dest="webhooks_command", required=True)
    serve = webhooks_sub.add_parser("serve", help="authenticate, validate and record sync requests; answer at once")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8090, help="port to listen on (default 8090)")
    serve.add_argument("--certfile", help="TLS certificate (iPaaS.com and BC call only https URLs)")
    serve.add_argument("--keyfile", help="TLS private key")
    serve.set_defaults(func=cmd_webhooks)
    subscriptions = webhooks_sub.add_parser(
        "subscriptions", help="Business Central API webhook subscriptions to BC_WEBHOOK_NOTIFICATION_URL: their state, "
        "or create the missing ones, renew them all, delete them")
    subscriptions.add_argument("action", nargs="?", choices=["list", "create", "renew", "delete"], default="list")
    subscriptions.set_defaults(func=cmd_webhook_subscriptions)

    daemon_text = ("run the Dagster daemon (schedules, sensors, the run queue) for this project, its sensors evaluated "
                   "every second (dagster-daemon: every 5 s), so a webhook's sync starts within a second or two")
    daemon = sub.add_parser("daemon", help=daemon_text, description=daemon_text)
    daemon.add_argument("--workspace", type=Path, default=PROJECT_DIR / "workspace.yaml",
                        help="the workspace file (default: the project's workspace.yaml)")
    daemon.set_defaults(func=cmd_daemon)
    dev = sub.add_parser("dev", help="start the Dagster UI (dagster dev) for this project")
    dev.add_argument("--port", type=int, default=3000, help="port of the Dagster UI (default 3000)")
    dev.add_argument("--scale", type=float, default=1.0, help="sandbox data scale when the sandbox is used (default 1)")
    dev.set_defaults(func=cmd_dev)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bc_pipeline")
    except PackageNotFoundError:  # run from a checkout that is not installed
        from bc_pipeline import __version__

        return __version__


def main(argv: Optional[Sequence[str]] = None) -> int:
    from bc_pipeline.arguments import UnknownName, check

    args = build_parser().parse_args(argv)
    try:
        check(args)  # before anything starts: no sandbox, no state touched
    except UnknownName as exc:
        print(f"bc-pipeline {args.command}: {exc}", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except SettingsError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
