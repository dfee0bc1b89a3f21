import sys

from prp.cli import main

sys.exit(main())
