import sys

from annotate._entry import main

sys.exit(main())
