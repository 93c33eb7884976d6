from podbgp.cli import main

raise SystemExit(main())
