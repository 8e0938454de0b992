from supervisor_pd.simulator.server.main import main

raise SystemExit(main())
