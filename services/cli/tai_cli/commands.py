"""The ``trading-ai`` commands: run the system, one service, or its tools.

Each command imports what it needs when it runs: the research and training commands are
registered by name and help line (``tai_cli.lazy``) and imported only when invoked or asked for
their own ``--help``; the commands defined here import their dependencies in their bodies.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from tai_cli.keys import OPERATOR_PRIVATE_KEY_FILE
from tai_cli.lazy import DeferredCommand, deferred_group
from tai_cli.main import SERVICES, run_one_service
from tai_events.market import Timeframe

if TYPE_CHECKING:
    from tai_cli.embedded import EmbeddedOptions

DEFERRED_COMMANDS = (
    DeferredCommand(
        "data",
        "Market data: backfill history and import files.",
        "tai_ingestion.cli:data_app",
    ),
    DeferredCommand(
        "backtest",
        "Backtest a strategy on a CSV of bars with the live strategy, risk and broker objects.",
        "tai_optimizer.cli:backtest_command",
    ),
    DeferredCommand(
        "train",
        "Train a model for a trade plan, register it and print its metrics and baselines.",
        "tai_cli.commands:train_command",
        factory=True,
    ),
    DeferredCommand(
        "walk-forward",
        "Walk-forward optimisation: in-sample search, out-of-sample trading, stitched equity.",
        "tai_optimizer.research_cli:walk_forward_command",
    ),
    DeferredCommand(
        "optimize",
        "Optuna search (resumable, shared by workers) with DSR, PBO and Monte Carlo; or --daily.",
        "tai_optimizer.research_cli:optimize_command",
    ),
    DeferredCommand(
        "montecarlo",
        "Monte Carlo on a backtest's trades (bootstrap, reshuffle) and returns (block bootstrap).",
        "tai_optimizer.research_cli:montecarlo_command",
    ),
)
"""The commands of other packages, imported only when used (their help lines are checked
against their docstrings by the tests)."""

app = typer.Typer(
    name="trading-ai",
    help="Trading AI Secure: run the system, one service, or its tools.",
    no_args_is_help=True,
    add_completion=False,
    cls=deferred_group(DEFERRED_COMMANDS),
)
keys_app = typer.Typer(help="Approval and operator signing keys.", no_args_is_help=True)
control_app = typer.Typer(
    help="Break-glass control signed with an operator key (no login needed).",
    no_args_is_help=True,
)
users_app = typer.Typer(help="Console and API users.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(users_app, name="users")
app.add_typer(control_app, name="control")
console = Console(stderr=True)


def train_command() -> typer.Typer:
    """Return the ``train`` command, training on the bundled bars of the symbol by default."""
    from tai_inference.cli import make_train_command  # noqa: PLC0415 - XGBoost, LightGBM ...
    from tai_ingestion.samples import sample_path  # noqa: PLC0415

    single = typer.Typer(add_completion=False)
    single.command("train")(make_train_command(lambda symbol: sample_path(f"{symbol}.csv")))
    return single


@app.command()
def run(
    data_directory: Annotated[Path, typer.Option(help="where the ledger and keys live")] = Path(
        ".data"
    ),
    replay_file: Annotated[
        Path | None, typer.Option(help="CSV of bars (default: bundled EURUSD hourly)")
    ] = None,
    symbol: Annotated[str, typer.Option(help="instrument of the replayed file")] = "EURUSD",
    timeframe: Annotated[Timeframe, typer.Option(help="timeframe of the bars")] = Timeframe.H1,
    speed: Annotated[float, typer.Option(help="bars per second; 0 = as fast as possible")] = 0.0,
    host: Annotated[str, typer.Option(help="interface for the console and API")] = "127.0.0.1",
    console_port: Annotated[int, typer.Option(help="Dash console port")] = 8050,
    api_port: Annotated[int, typer.Option(help="REST API port")] = 8000,
    no_console: Annotated[bool, typer.Option(help="replay only, without the console")] = False,
    exit_when_done: Annotated[bool, typer.Option(help="stop after the replay")] = False,
    reset: Annotated[bool, typer.Option(help="start from an empty ledger")] = False,
    no_inference: Annotated[
        bool, typer.Option(help="skip the ML inference component (and its demo model)")
    ] = False,
) -> None:
    """Run every service in one process on the in-memory bus and SQLite, replaying data."""
    import asyncio  # noqa: PLC0415 - the embedded system loads only when it runs

    from tai_cli.embedded import EmbeddedOptions  # noqa: PLC0415

    options = EmbeddedOptions(
        data_directory=data_directory,
        replay_file=replay_file,
        symbol=symbol,
        timeframe=timeframe,
        replay_speed=speed,
        serve_console=not no_console,
        api_port=api_port,
        console_port=console_port,
        host=host,
        reset=reset,
        inference=not no_inference,
    )
    try:
        asyncio.run(_run_embedded(options, exit_when_done=exit_when_done or no_console))
    except KeyboardInterrupt:
        console.print("stopped")


async def _run_embedded(options: EmbeddedOptions, *, exit_when_done: bool) -> None:
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from tai_cli.embedded import EmbeddedSystem  # noqa: PLC0415
    from tai_cli.reports import rejection_lines, strategy_table  # noqa: PLC0415

    system = EmbeddedSystem(options)
    await system.start()
    try:
        if system.inference is not None and system.inference.note:
            console.print(system.inference.note)
        if system.gateway is not None:
            console.print(
                f"[bold green]Console[/] http://{options.host}:{options.console_port}/   "
                f"[bold green]API[/] http://{options.host}:{options.api_port}/api/docs"
            )
            console.print(
                "[bold]Break-glass halt[/] (no login): trading-ai control halt --reason '...' "
                f"--key {system.operator_keys.private_key} "
                f"--api-url http://{options.host}:{options.api_port}"
            )
            if system.admin_password:
                console.print(
                    "[bold yellow]Admin login (shown once):[/] user [bold]admin[/] password "
                    f"[bold]{system.admin_password}[/]"
                )
        with Progress(
            TextColumn("replaying {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task(f"{options.symbol} {options.timeframe.value}", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            report = await system.replay(progress=advance)
        result = await system.result(report)
        console.print(
            f"replayed {report.published} bars; "
            f"rows rejected: {report.rejected_by_rule or 'none'}; "
            f"fills in the ledger: {len(result.fills)}; "
            f"final equity: {result.final_equity:,.2f}"
            if result.final_equity is not None
            else f"replayed {report.published} bars; no fills"
        )
        summary = await system.strategy_summary()
        console.print(strategy_table(summary))
        for line in rejection_lines(summary):
            console.print(line)
        if system.gateway is not None and not exit_when_done:
            console.print("serving the console; press Ctrl-C to stop")
            await system.serve_forever()
    finally:
        await system.stop()


@app.command()
def service(
    name: Annotated[str, typer.Argument(help=f"one of: {', '.join(SERVICES)}")],
) -> None:
    """Run one service as its own process on RabbitMQ/PostgreSQL/Redis from the environment."""
    if name not in SERVICES:
        console.print(f"[red]unknown service {name!r}[/]; choose one of {', '.join(SERVICES)}")
        raise typer.Exit(2)
    code = run_one_service(name)
    if code:
        raise typer.Exit(code)


@app.command()
def contracts(
    directory: Annotated[Path, typer.Argument(help="the proto/ directory")] = Path("proto"),
    check: Annotated[bool, typer.Option(help="fail if proto/ differs from the code")] = False,
) -> None:
    """Regenerate (or check) proto/: JSON Schemas, AsyncAPI, topic catalogue and OpenAPI."""
    from tai_cli.contracts import published_contracts  # noqa: PLC0415
    from tai_events.contracts import stale_contracts, write_contracts  # noqa: PLC0415

    rendered = published_contracts()
    if check:
        problems = stale_contracts(directory, rendered)
        if problems:
            console.print(
                "[red]proto/ is stale; run `make contracts`:[/]\n  " + "\n  ".join(problems)
            )
            raise typer.Exit(1)
        console.print("proto/ matches the code")
        return
    written = write_contracts(directory, rendered)
    console.print(f"wrote {len(written)} files under {directory}")


@keys_app.command("generate")
def keys_generate(
    directory: Annotated[Path, typer.Option(help="where to write the key pair")] = Path(
        ".data/keys"
    ),
    overwrite: Annotated[bool, typer.Option(help="replace an existing key pair")] = False,
) -> None:
    """Generate an Ed25519 approval key pair (private key for risk, public for execution)."""
    from tai_cli.keys import generate_key_files  # noqa: PLC0415

    try:
        files = generate_key_files(directory, overwrite=overwrite)
    except FileExistsError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(1) from None
    console.print(f"private key (risk only, mode 0600): {files.private_key}")
    console.print(f"public key (execution): {files.public_key}")


@keys_app.command("operator")
def keys_operator(
    directory: Annotated[Path, typer.Option(help="where to write the key pair")] = Path(
        ".data/keys"
    ),
    overwrite: Annotated[bool, typer.Option(help="replace an existing key pair")] = False,
) -> None:
    """Generate the operator's break-glass key pair (private key stays with the operator)."""
    from tai_cli.keys import OPERATOR_PUBLIC_KEY_FILE, generate_key_files  # noqa: PLC0415

    try:
        files = generate_key_files(
            directory,
            overwrite=overwrite,
            private_name=OPERATOR_PRIVATE_KEY_FILE,
            public_name=OPERATOR_PUBLIC_KEY_FILE,
        )
    except FileExistsError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(1) from None
    console.print(f"private key (operator only, mode 0600): {files.private_key}")
    console.print(f"public key (gateway, GATEWAY_OPERATOR_PUBLIC_KEYS): {files.public_key}")


@control_app.command("halt")
def control_halt(
    reason: Annotated[str, typer.Option(help="why trading must stop (audited)")],
    key: Annotated[
        Path, typer.Option(envvar="TAI_OPERATOR_KEY", help="operator private key (PEM)")
    ] = Path(f".data/keys/{OPERATOR_PRIVATE_KEY_FILE}"),
    api_url: Annotated[
        str, typer.Option(envvar="GATEWAY_API_URL", help="the gateway's REST API")
    ] = "http://127.0.0.1:8000",
) -> None:
    """Halt trading now (kill switch) with an operator-signed request; no account needed."""
    from tai_cli.control import BreakGlassError, send_halt  # noqa: PLC0415

    try:
        sent = send_halt(api_url, key, reason)
    except BreakGlassError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(1) from None
    console.print(f"{sent.command} published by {sent.operator} (message {sent.message_id})")


@app.command("broker-setup")
def broker_setup(  # nosec B107  # the empty password default means "unset: use rabbitmqctl"
    vhost: Annotated[str, typer.Option(help="virtual host to create")] = "tai",
    user_prefix: Annotated[str, typer.Option(help="prefix of the per-service users")] = "tai-",
    secrets_file: Annotated[
        Path, typer.Option(help="0600 file receiving generated passwords (VARIABLE=value)")
    ] = Path("deploy/secrets/rabbitmq.env"),
    definitions_file: Annotated[
        Path, typer.Option(help="hash-free definitions file to (re)write")
    ] = Path("deploy/rabbitmq/definitions.json"),
    layout_file: Annotated[
        Path, typer.Option(help="the outside subscribers and the history retention (kept)")
    ] = Path("deploy/rabbitmq/layout.json"),
    subscriber: Annotated[
        str | None,
        typer.Option(help="add (or change) an outside subscriber: reads ext.NAME.* queues only"),
    ] = None,
    topics: Annotated[
        list[str] | None,
        typer.Option(
            help="with --subscriber: a binding pattern it may use (repeat, or comma-separate);"
            " default every public topic, which also grants the history stream"
        ),
    ] = None,
    remove_subscriber: Annotated[
        str | None,
        typer.Option(help="remove an outside subscriber: its user, queues and password go"),
    ] = None,
    history_max_age: Annotated[
        str | None, typer.Option(help="keep public events this long, e.g. 7D, 12h (kept)")
    ] = None,
    history_max_bytes: Annotated[
        int | None, typer.Option(help="keep at most this many bytes of public events (kept)")
    ] = None,
    management_url: Annotated[
        str, typer.Option(envvar="RABBITMQ_MANAGEMENT_URL", help="management API, if enabled")
    ] = "http://127.0.0.1:15672",
    management_user: Annotated[str, typer.Option(envvar="RABBITMQ_ADMIN_USER")] = "guest",
    management_password: Annotated[
        str,
        typer.Option(
            envvar="RABBITMQ_ADMIN_PASSWORD", help="unset: rabbitmqctl on this node", hidden=True
        ),
    ] = "",
    apply: Annotated[bool, typer.Option(help="provision the running broker")] = True,
) -> None:
    """Provision RabbitMQ (vhost, users, permissions, exchanges, policies); write definitions.

    Outside subscribers and the history retention are kept in the layout file, so every later
    run (and the definitions file compose and Kubernetes load) keeps them.
    """
    import os  # noqa: PLC0415
    from dataclasses import replace  # noqa: PLC0415

    from tai_bus import provisioning  # noqa: PLC0415

    if topics and subscriber is None:
        console.print("[red]--topics needs --subscriber NAME[/]")
        raise typer.Exit(2)
    try:
        layout = provisioning.read_layout(layout_file, vhost=vhost, user_prefix=user_prefix)
        if history_max_age is not None or history_max_bytes is not None:
            layout = replace(
                layout,
                history=replace(
                    layout.history,
                    max_age=history_max_age or layout.history.max_age,
                    max_bytes=history_max_bytes or layout.history.max_bytes,
                ),
            )
        if subscriber is not None:
            patterns = [item.strip() for value in topics or [] for item in value.split(",")]
            added = (
                provisioning.Subscriber(subscriber, tuple(item for item in patterns if item))
                if patterns
                else provisioning.Subscriber(subscriber)
            )
            layout = provisioning.with_subscriber(layout, added)
        if remove_subscriber is not None:
            layout = provisioning.without_subscriber(layout, remove_subscriber)
    except ValueError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None
    if provisioning.write_layout(layout_file, layout):
        console.print(f"layout written to {layout_file}")
    changed = provisioning.write_definitions_file(definitions_file, layout)
    console.print(f"definitions {'written to' if changed else 'unchanged in'} {definitions_file}")
    if not apply:
        if remove_subscriber is not None:
            removed_user = layout.subscriber_user(remove_subscriber)
            provisioning.forget_password(secrets_file, removed_user)
            console.print(
                f"{removed_user} left the definitions; on a running broker also delete the user"
                " and its ext queues (or run again without --no-apply)"
            )
        return
    try:
        administrator = provisioning.choose_administrator(
            management_url, management_user, management_password
        )
        passwords = provisioning.resolve_passwords(layout, os.environ, secrets_file)
        provisioning.provision(administrator, layout, passwords)
        if remove_subscriber is not None:
            queues = provisioning.revoke_subscriber(administrator, layout, remove_subscriber)
            provisioning.forget_password(secrets_file, layout.subscriber_user(remove_subscriber))
            console.print(
                f"subscriber {remove_subscriber} revoked: user "
                f"{layout.subscriber_user(remove_subscriber)} deleted (connections closed), "
                f"queues deleted: {', '.join(queues) or 'none'}"
            )
    except provisioning.BrokerAdministrationError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(1) from None
    console.print(
        f"vhost {vhost}: {len(layout.users())} users provisioned with "
        f"{type(administrator).__name__}; passwords from the environment or {secrets_file}"
    )
    if subscriber is not None:
        user = layout.subscriber_user(subscriber)
        console.print(
            f"subscriber {subscriber}: user {user}, password "
            f"{provisioning.password_variable(user)} in {secrets_file}; queues ext.{subscriber}.*"
        )


DatabaseUrl = Annotated[str, typer.Option(envvar="DATABASE_URL", help="ledger database URL")]
DEFAULT_LEDGER_URL = "sqlite+aiosqlite:///.data/embedded.sqlite"
sessions_app = typer.Typer(help="Signed-in sessions (API tokens, console cookies).")
users_app.add_typer(sessions_app, name="sessions", no_args_is_help=True)


def _read_password() -> str:
    """Read a new password from the terminal (asked twice) or the first line of stdin."""
    import getpass  # noqa: PLC0415

    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass("password: ")
    if getpass.getpass("again: ") != password:
        console.print("[red]the passwords differ[/]")
        raise typer.Exit(2)
    return password


def _administer(database_url: str, change: Callable[[Any], Awaitable[object]]) -> object:
    """Run one user administration step on the ledger, turning refusals into exit code 2."""
    import asyncio  # noqa: PLC0415
    import getpass  # noqa: PLC0415

    from tai_gateway.users import UnknownUserError, UserAdministration  # noqa: PLC0415
    from tai_store.database import Store  # noqa: PLC0415

    async def run() -> object:
        store = Store(database_url)
        try:
            await store.migrate()
            return await change(UserAdministration(store, operator=f"cli:{getpass.getuser()}"))
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except (UnknownUserError, ValueError) as error:
        message = error.args[0] if error.args else str(error)
        console.print(f"[red]{message}[/]")
        raise typer.Exit(2) from None


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="login name")],
    role: Annotated[str, typer.Option(help="viewer, trader or admin")] = "viewer",
    database_url: DatabaseUrl = DEFAULT_LEDGER_URL,
) -> None:
    """Create a console/API user; the password is read from the terminal (or stdin)."""
    if role not in ("viewer", "trader", "admin"):
        console.print(f"[red]role must be viewer, trader or admin, not {role!r}[/]")
        raise typer.Exit(2)
    password = _read_password()
    _administer(database_url, lambda users: users.add(username, password, role))
    console.print(f"user {username} ({role}) created")


@users_app.command("passwd")
def users_passwd(
    username: Annotated[str, typer.Argument(help="login name")],
    database_url: DatabaseUrl = DEFAULT_LEDGER_URL,
) -> None:
    """Set a user's password (read like `add`); ends all of the user's sessions."""
    password = _read_password()
    ended = _administer(database_url, lambda users: users.set_password(username, password))
    console.print(f"password of {username} changed; {ended} session(s) ended")


@users_app.command("set-role")
def users_set_role(
    username: Annotated[str, typer.Argument(help="login name")],
    role: Annotated[str, typer.Argument(help="viewer, trader or admin")],
    database_url: DatabaseUrl = DEFAULT_LEDGER_URL,
) -> None:
    """Give a user another role; ends all of the user's sessions."""
    if role not in ("viewer", "trader", "admin"):
        console.print(f"[red]role must be viewer, trader or admin, not {role!r}[/]")
        raise typer.Exit(2)
    ended = _administer(database_url, lambda users: users.set_role(username, role))
    console.print(f"{username} is now {role}; {ended} session(s) ended")


@users_app.command("remove")
def users_remove(
    username: Annotated[str, typer.Argument(help="login name")],
    database_url: DatabaseUrl = DEFAULT_LEDGER_URL,
) -> None:
    """Delete a user; ends all of the user's sessions."""
    ended = _administer(database_url, lambda users: users.remove(username))
    console.print(f"user {username} removed; {ended} session(s) ended")


@users_app.command("list")
def users_list(database_url: DatabaseUrl = DEFAULT_LEDGER_URL) -> None:
    """List users with their role and live sessions."""
    summaries = _administer(database_url, lambda users: users.list())
    if not isinstance(summaries, list):
        raise TypeError("users list returned no list")
    from rich.table import Table  # noqa: PLC0415

    table = Table("user", "role", "created", "API sessions", "console sessions")
    for user in summaries:
        table.add_row(
            user.username,
            user.role,
            user.created_at.isoformat(timespec="seconds"),
            str(user.api_sessions),
            str(user.console_sessions),
        )
    Console().print(table)


@sessions_app.command("revoke")
def sessions_revoke(
    username: Annotated[str, typer.Argument(help="login name")],
    database_url: DatabaseUrl = DEFAULT_LEDGER_URL,
) -> None:
    """End every session of a user (API tokens and console cookies) at once."""
    ended = _administer(database_url, lambda users: users.revoke_sessions(username))
    console.print(f"{ended} session(s) of {username} ended")
