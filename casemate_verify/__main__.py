import sys

from casemate_verify.cli import main

sys.exit(main())
