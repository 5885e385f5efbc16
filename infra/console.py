"""The command line's entry point, for `python -m infra` and the installed `ml-platform` command: the command
line's modules load infra/kubernetes-versions.yaml when imported, so a broken data file is reported here as one
line naming the file and key (exit 2) rather than as a traceback."""

from __future__ import annotations

import sys

from ml_platform.infra.kubernetes_versions import VersionsFileError


def main(argv: list[str] | None = None) -> int:
    try:
        from ml_platform.infra import cli
    except VersionsFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return cli.main(argv)
