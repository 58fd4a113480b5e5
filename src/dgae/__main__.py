from dgae.cli.main import main

raise SystemExit(main())
