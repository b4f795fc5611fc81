from timbrix_sandbox.cli import main

raise SystemExit(main())
