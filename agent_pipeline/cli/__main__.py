"""``python -m agent_pipeline.cli``: the same commands as the ``agent-pipeline`` console script."""

import sys

from agent_pipeline.cli import main

sys.exit(main())
