import sys

from policyrag.cli import main

sys.exit(main())
