"""Two entry points in one file, because Pulumi.yaml's `main: infra/` makes Pulumi run this directory:

- under the Pulumi engine (`pulumi up`/`preview`), a resource monitor is attached: run the program;
- as `python -m infra <command>`, there is none: run the command line (plan, ...).
"""

import sys

import pulumi.runtime.settings

if pulumi.runtime.settings.get_monitor() is not None:
    from ml_platform.infra.program import main

    main(real_engine=True)
else:
    from ml_platform.infra.cli import main

    sys.exit(main())
