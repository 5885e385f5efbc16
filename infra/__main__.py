"""Two entry points in one file, because Pulumi.yaml's `main: infra/` makes Pulumi run this directory:

- under the Pulumi engine (`pulumi up`/`preview`), a resource monitor is attached: run the program;
- as `python -m infra <command>`, there is none: run the command line (plan, ...).
"""

import sys

import pulumi.runtime.settings

from ml_platform.infra.kubernetes_versions import VersionsFileError

if pulumi.runtime.settings.get_monitor() is not None:
    try:
        from ml_platform.infra.program import main
    except VersionsFileError as err:
        # RunError ends the run with the message alone, no traceback.
        raise pulumi.RunError(str(err)) from None

    main(real_engine=True)
else:
    from ml_platform.infra.console import main

    sys.exit(main())
