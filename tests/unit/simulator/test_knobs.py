from supervisor_pd.simulator.knobs import Fault, parse_faults


def test_fault_specs() -> None:
    faults = parse_faults("server-2:crash_after=3@once; server-*:slow_health=0.5,controller:exit=7;bogus")
    assert faults == (
        Fault("server-2", "crash_after", 3.0, True),
        Fault("server-*", "slow_health", 0.5, False),
        Fault("controller", "exit", 7.0, False),
    )
    assert faults[1].applies_to("server-11")
    assert not faults[0].applies_to("server-20")
    assert not faults[2].applies_to("coordinator")
