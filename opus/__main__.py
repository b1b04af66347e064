"""`python -m opus` runs the `opus` command."""

from opus.cli import main

raise SystemExit(main())
