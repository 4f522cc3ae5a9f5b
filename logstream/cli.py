"""The `logstream` command line."""

import importlib

import click

from logstream.core.follower import DEFAULT_ROTATE_WAIT
from logstream.core.lines import DEFAULT_MAX_LINE_BYTES
from logstream.core.spool import DEFAULT_SPOOL_BYTES, MIN_SPOOL_BYTES

# Subcommands that live with the code they drive, loaded only when invoked,
# so `logstream serve` never imports the measuring tools or Redis.
LAZY_COMMANDS = {
    "bench": "logstream.tools.bench:bench",
    "compare": "logstream.tools.compare:compare",
    "ship": "logstream.scale.shipper:ship",
}


class LazyGroup(click.Group):
    """A click group whose other subcommands are imported on first use."""

    def list_commands(self, ctx):
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx, name):
        if name in LAZY_COMMANDS:
            module, attribute = LAZY_COMMANDS[name].split(":")
            try:
                return getattr(importlib.import_module(module), attribute)
            except ImportError as error:  # an optional extra is not installed
                raise click.ClickException(f"`logstream {name}` can't run: {error}")
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup)
@click.version_option(package_name="logstream")
def main():
    """Stream log files to browsers and notebooks over WebSockets and SSE."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; the default serves this machine only.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--data-dir", default="data/logs", show_default=True,
              type=click.Path(file_okay=False), envvar="LOGSTREAM_DATA_DIR",
              help="Folder of <deployment>.log files.")
@click.option("--cors", multiple=True, metavar="ORIGIN",
              help="Allow a cross-origin page at ORIGIN (repeatable); same-origin only by default.")
@click.option("--line-interval", default=0.5, show_default=True, type=click.FloatRange(min=0),
              help="Seconds between lines written by simulated deployments.")
@click.option("--max-line-bytes", default=DEFAULT_MAX_LINE_BYTES, show_default=True,
              type=click.IntRange(min=64), help="Longer lines are cut, with a visible marker.")
@click.option("--poll", is_flag=True, help="Poll files instead of using inotify.")
@click.option("--rotate-wait", default=DEFAULT_ROTATE_WAIT, show_default=True,
              type=click.FloatRange(min=0),
              help="Seconds to keep reading a renamed (rotated) log before switching "
                   "to the new file.")
@click.option("--token", envvar="LOGSTREAM_TOKEN", default=None,
              help="Require this token on every route but /healthz, every stream and "
                   "every Socket.IO connection (or set LOGSTREAM_TOKEN).")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              envvar="LOGSTREAM_ALLOWED_HOSTS",
              help="Also answer requests for host NAME (repeatable; '*' for any). "
                   "By default only loopback names and the bound address are answered, "
                   "which stops DNS-rebinding pages.")
@click.option("--message-queue", metavar="URL", default=None,
              help="Share rooms with other workers through Redis (redis://HOST:PORT/DB); "
                   "live lines then come from `logstream ship`.")
@click.option("--name", default="stdin", show_default=True,
              help="The deployment id of standard input, when PATH is '-'.")
@click.option("--spool-bytes", default=DEFAULT_SPOOL_BYTES, show_default=True,
              type=click.IntRange(min=MIN_SPOOL_BYTES),
              help="Standard input is kept in a spool file of at most this size; "
                   "past it, the spool starts again (as a rotated log).")
@click.option("--max-connections", default=None, type=click.IntRange(min=1),
              help="Socket.IO connections and SSE streams served at once; the next is "
                   "refused (default: 12,000 on green threads as open files allow, 1,000 "
                   "on OS threads; see docs/benchmarks.md).")
@click.option("--async-mode", type=click.Choice(["gevent", "threading"]), default=None,
              help="gevent: every connection on green threads in one OS thread (the "
                   "default when gevent is installed); threading: OS threads, as in a "
                   "Jupyter kernel.")
@click.argument("paths", nargs=-1, type=click.Path(), metavar="[PATH]...")
def serve(host, port, data_dir, cors, line_interval, max_line_bytes, poll, rotate_wait,
          token, allowed_hosts, message_queue, name, spool_bytes, max_connections,
          async_mode, paths):
    """Serve the log viewer and the streaming endpoints.

    Each PATH is a log file, a folder (every *.log file under it, now or
    later) or '-' for standard input. Without PATH, the <deployment>.log files
    of --data-dir are served, with simulated deployments.
    """
    import ipaddress

    from logstream.web.server import serve_forever
    from logstream.web.vendor import is_present

    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and not token:
        click.secho(f"warning: serving on {host} without --token: anyone who can reach "
                    "this machine can read every log.", fg="yellow", err=True)

    from logstream.support.green import is_green

    if async_mode == "gevent" and not is_green():
        raise click.UsageError("--async-mode gevent needs gevent, patched in before anything "
                               "else: run the `logstream` command or `python -m logstream`.")
    from logstream.web.limits import serving_limits
    from logstream.web.server import raise_fd_limit

    worker = {"limits": serving_limits(is_green(), raise_fd_limit(), max_connections)}
    if paths:
        if message_queue:
            raise click.UsageError("--message-queue serves --data-dir; it can't follow PATHs.")
        worker["sources"] = followed_set(paths, name, spool_bytes)
    if message_queue:
        from logstream.scale.relay import check_message_queue
        from logstream.scale.worker import create_worker_app

        problem = check_message_queue(message_queue)
        if problem:
            raise click.UsageError(problem)
        worker.update(app_factory=create_worker_app, message_queue=message_queue)
    if not is_present():
        click.secho("warning: the browser's Socket.IO client is missing; "
                    "run `make install` (or `python -m logstream.web.vendor`).", fg="yellow", err=True)
    # Never the token itself: terminals are shared, scrolled back and logged.
    shown = f"http://{host}:{port}" + ("  (open /?token=<your token> once)" if token else "")
    served = f"{len(paths)} path(s)" if paths else data_dir
    click.echo(f"logstream serving {served} on {shown}  (Ctrl+C to stop)")
    try:
        serve_forever(data_dir, host=host, port=port, cors=cors, line_interval=line_interval,
                      max_line_bytes=max_line_bytes, use_inotify=not poll,
                      rotate_wait=rotate_wait, token=token,
                      allowed_hosts=[host_name for names in allowed_hosts
                                     for host_name in names.split(",")], **worker)
    except KeyboardInterrupt:
        pass


def followed_set(paths, name, spool_bytes):
    """Return the FollowedSet of the command line's PATHs, reading standard input for '-'."""
    import sys

    from logstream.core.sources import FollowedSet
    from logstream.core.spool import StdinSpool

    if paths.count("-") > 1:
        raise click.UsageError("'-' (standard input) can be given once.")
    spool = None
    if "-" in paths:
        spool = StdinSpool(sys.stdin.buffer, name=name, max_bytes=spool_bytes)
    try:
        followed = FollowedSet([p for p in paths if p != "-"], stdin=spool)
    except ValueError as error:
        if spool is not None:
            spool.close()
        raise click.UsageError(str(error))
    if spool is not None:
        spool.start()
    return followed


if __name__ == "__main__":
    main()
