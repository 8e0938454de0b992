from supervisor_pd.cli import main

raise SystemExit(main())
