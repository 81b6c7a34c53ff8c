"""`python -m bc_pipeline.sandbox serve ...`: run the sandbox in the foreground (see launcher.main)."""

import sys

from bc_pipeline.sandbox.launcher import main

sys.exit(main(sys.argv[1:]))
