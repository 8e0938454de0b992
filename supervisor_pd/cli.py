"""The `supervisor-pd` command line.

Every bad input ends as one line on stderr naming the file, field, flag or variable, and exit
code 2; nothing is written in that case.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from supervisor_pd import __version__, client

if TYPE_CHECKING:
    from supervisor_pd.settings import Settings

SHELLS = ("bash", "zsh", "tcsh")

# The operator commands (`probe` above all) stay on the standard library: settings, pydantic and
# the runtime are imported only by the commands that need them.


def _base() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:  # type: ignore[type-arg]
    parser = argparse.ArgumentParser(
        prog="supervisor-pd",
        description="Run MindIE prefill/decode disaggregated serving in one container.",
    )
    parser.add_argument("--version", action="version", version=f"supervisor-pd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    return parser, commands


def _plan_flags(
    parser: argparse.ArgumentParser, simulate_help: str, output_flag: str = "--output", api_port_help: str = ""
) -> None:
    """The flags every command that plans takes: inputs, where the files go, host, HTTP port."""
    from supervisor_pd.settings import SimProfile

    parser.add_argument("--conf-dir", type=Path, help="folder with the input MindIE configs")
    parser.add_argument(
        output_flag, dest="output", type=Path, metavar="DIR", help="folder to write the generated files to"
    )
    parser.add_argument("--simulate", choices=[profile.value for profile in SimProfile], help=simulate_help)
    parser.add_argument("--api-port", metavar="PORT", help=api_port_help or "supervisor_pd's HTTP port")


def _parser() -> argparse.ArgumentParser:

    parser, commands = _base()

    plan = commands.add_parser(
        "plan",
        help="discover the host and write every MindIE config and the global ranktable",
        description="Discover the host, plan the Servers, their ports and CPU sets, and write "
        "config<n>.json, ms_controller.json, ms_coordinator.json and global_ranktable.json.",
    )
    _plan_flags(plan, "plan for a simulated host instead of this machine")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.add_argument("--dry-run", action="store_true", help="plan and print, write nothing")

    run = commands.add_parser(
        "run",
        help="plan, write the configs, then start and supervise the Servers, Coordinator and Controller",
        description="Discover, plan and write the files like `plan`, then start Servers -> Coordinator -> "
        "Controller gated on readiness, restart what fails, and drain on SIGTERM.",
    )
    _plan_flags(run, "run on a simulated host with the simulated MindIE processes")

    doctor = commands.add_parser(
        "doctor",
        help="check the host, the model weights and the settings before anything starts (run does this too)",
        description="Discover and plan as `run` would, write nothing, and check what MindIE needs of this host: "
        "driver, chip health, device IPs and links, model weights, /dev/shm, file limit, jemalloc, log disk. "
        "Exit code 0: every check passed; 1: warnings only; 2: a failure that would stop MindIE.",
    )
    _plan_flags(doctor, "check a simulated host instead of this machine")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")

    export = commands.add_parser(
        "export",
        help="plan and write the configs like `run`, then write the processes in another supervisor's format",
        description="Do what `run` does up to the first start (discover, plan, write the MindIE files), "
        "then write the same processes as another supervisor's configuration.",
    )
    formats = export.add_subparsers(dest="format", required=True, metavar="FORMAT")
    supervisord = formats.add_parser(
        "supervisord",
        help="a supervisord.conf (see docs/supervisord.md for what supervisord cannot do)",
        description="Write a supervisord.conf that starts the Servers, Coordinator and Controller as `run` "
        "would, minus readiness gating, drain, role-aware restarts, health checks and the HTTP port.",
    )
    supervisord.add_argument(
        "--output",
        dest="destination",
        type=Path,
        metavar="FILE",
        help="the supervisord.conf to write (default: stdout)",
    )
    # --output is the conf here; the generated-config folder (dest "output", as `run --output`) is --output-dir.
    _plan_flags(
        supervisord,
        "export for a simulated host with the simulated MindIE processes",
        output_flag="--output-dir",
        api_port_help="supervisor_pd's HTTP port, kept free by the plan",
    )

    from supervisor_pd.settings import SimProfile

    kubernetes = formats.add_parser(
        "kubernetes",
        help="the ConfigMap, Deployment and Service of one pod per Atlas 800I (see docs/kubernetes.md)",
        description="Plan the pod as `run` would on its node (with --simulate: on that simulated machine), "
        "then write the Kubernetes manifests: NPU count, ports, probes and grace period from that plan and the "
        "settings, the MindIE configs in the ConfigMap. configs/k8s/ holds this command's output.",
    )
    kubernetes.add_argument(
        "--output", dest="destination", type=Path, metavar="FILE", help="the YAML file to write (default: stdout)"
    )
    kubernetes.add_argument("--conf-dir", type=Path, help="folder with the MindIE configs to put in the ConfigMap")
    kubernetes.add_argument(
        "--simulate",
        choices=[profile.value for profile in SimProfile],
        help="plan for this simulated machine instead of this host",
    )
    kubernetes.add_argument("--api-port", metavar="PORT", help="supervisor_pd's HTTP port in the pod")
    kubernetes.add_argument(
        "--scale-out",
        action="store_true",
        help="several pods: one per node (required anti-affinity), rolling update one pod at a time, a ClusterIP "
        "Service (docs/scale-out.md)",
    )
    kubernetes.add_argument(
        "--replicas", metavar="N", help="pods of the Deployment (default: 1; 2 with --scale-out, which N > 1 needs)"
    )

    show = commands.add_parser("settings", help="show the effective settings, or their reference")
    show.add_argument("--markdown", action="store_true", help="print the settings reference as Markdown")
    client.add_commands(commands)
    completion = commands.add_parser(
        "completion",
        help="print the shell completion script (bash, zsh or tcsh)",
        description="Print a completion script for every command and flag, made by shtab from this parser: "
        'bash: `eval "$(supervisor-pd completion bash)"`, or save it under /etc/bash_completion.d/; zsh: save it '
        'as _supervisor-pd in a folder of $fpath; tcsh: `eval "`supervisor-pd completion tcsh`"`.',
    )
    completion.add_argument("shell", choices=SHELLS)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    from supervisor_pd.settings import load_settings

    # Values are checked by the settings, not argparse, so a bad --api-port gets the same one-line
    # error as a bad SUPERVISOR_PD_API_PORT.
    flags = {
        "simulate": getattr(args, "simulate", None),
        "conf_dir": getattr(args, "conf_dir", None),
        "output_dir": getattr(args, "output", None),
        "api_port": getattr(args, "api_port", None),
    }
    return load_settings(**flags)


def cmd_plan(args: argparse.Namespace) -> int:
    import orjson

    from supervisor_pd.pipeline import prepare, write
    from supervisor_pd.plan.render import plan_json, plan_text

    written = not args.dry_run
    prepared = prepare(_settings(args), "plan", lock=written)
    try:
        if written:
            write(prepared)
    finally:
        prepared.release()
    plan, output = prepared.plan, str(prepared.output)
    if args.json:
        document = {**plan_json(plan, output, written), "preflight": prepared.doctor.as_json()}
        sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
    else:
        sys.stdout.write(plan_text(plan, output, written))
        sys.stdout.write("\n" + prepared.doctor.text())
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    import orjson

    from supervisor_pd.doctor import unexamined
    from supervisor_pd.errors import InputError
    from supervisor_pd.pipeline import prepare

    settings = _settings(args)
    try:
        report = prepare(settings, "doctor", lock=False).doctor
    except InputError as exc:
        report = unexamined(exc)
    if args.json:
        sys.stdout.write(orjson.dumps(report.as_json(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(report.text())
    return report.exit_code


def cmd_run(args: argparse.Namespace) -> int:
    from supervisor_pd.launch import run

    return run(_settings(args))


def cmd_export(args: argparse.Namespace) -> int:
    from supervisor_pd.export.command import export_kubernetes, export_supervisord, output_dir_flag

    if args.format == "kubernetes":
        exported = export_kubernetes(_settings(args), args.destination, args.replicas, args.scale_out)
    else:
        with output_dir_flag():
            settings = _settings(args)
        exported = export_supervisord(settings, args.destination)
    for warning in exported.warnings:
        sys.stderr.write(f"supervisor-pd: warning: {warning}\n")
    if args.destination is None:
        sys.stdout.write(exported.text)
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    from supervisor_pd.settings import Settings, env_name, load_settings
    from supervisor_pd.settings_doc import settings_markdown

    if args.markdown:
        sys.stdout.write(settings_markdown())
        return 0
    settings = load_settings()
    for name in Settings.model_fields:
        value = getattr(settings, name)
        shown = value.value if hasattr(value, "value") else value
        sys.stdout.write(f"{env_name(name)}={'' if shown is None else shown}\n")
    return 0


def cmd_completion(args: argparse.Namespace) -> int:
    import shtab  # here only: no other command pays for it

    sys.stdout.write(shtab.complete(_parser(), args.shell))
    return 0


# What a shell reports for a program ended by SIGPIPE (128 + 13), as `yes | head -1` shows.
CLOSED_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            code = _main(argv)
        except SystemExit as done:  # argparse's --help, --version and usage errors
            if not isinstance(done.code, int | None):
                raise
            code = done.code or 0
        sys.stdout.flush()  # here, so that a reader gone is caught below and not at exit
    except BrokenPipeError:
        # The reader went away (`| head -1`): stop quietly, as any Unix tool does. Python would
        # try to flush stdout again at exit and print a traceback there: point it at /dev/null.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return CLOSED_PIPE
    return code


def _main(argv: Sequence[str] | None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] in client.COMMANDS:
        parser, commands = _base()
        client.add_commands(commands)
        return client.run(parser.parse_args(words))
    args = _parser().parse_args(words)
    if args.command in client.COMMANDS:
        return client.run(args)
    from supervisor_pd.errors import SupervisorPdError

    handlers = {
        "plan": cmd_plan,
        "doctor": cmd_doctor,
        "run": cmd_run,
        "export": cmd_export,
        "settings": cmd_settings,
        "completion": cmd_completion,
    }
    try:
        return int(handlers[args.command](args))
    except SupervisorPdError as exc:
        sys.stderr.write(f"supervisor-pd: error: {exc}\n")
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return 130
