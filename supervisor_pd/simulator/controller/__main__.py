from supervisor_pd.simulator.controller.main import main

raise SystemExit(main())
