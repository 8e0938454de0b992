from supervisor_pd.simulator.coordinator.main import main

raise SystemExit(main())
