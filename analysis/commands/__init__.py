"""Sub-commands of ``edgeopt`` that live in their own modules.

Each module listed in :data:`COMMAND_MODULES` defines ``register(subparsers)`` (adding its
parser, with ``set_defaults(handler=run)``) and ``run(args) -> int`` (the exit code). Modules
are imported when the parser is built; keep their top-level imports light (argparse only).
"""

COMMAND_MODULES: tuple[str, ...] = (
    "edgeopt.analysis.commands.bench",
    "edgeopt.analysis.commands.check",
    "edgeopt.analysis.commands.import_tables",
    "edgeopt.analysis.commands.profile",
    "edgeopt.analysis.commands.sensitivity",
    "edgeopt.analysis.commands.sweep",
    "edgeopt.analysis.commands.verify",
)
