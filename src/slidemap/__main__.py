import sys

from slidemap.cli import main

sys.exit(main())
