import sys

from llmrec.cli import main

sys.exit(main())
