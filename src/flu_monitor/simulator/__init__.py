"""The flu case simulator: scenarios, the outbreak model, sinks and the `simulate` command.

Library use (e.g. the local pipeline):

    from flu_monitor.simulator import Simulator, load_scenario
    sim = Simulator.backfilled(load_scenario("scenarios/default.yaml"), seed=1, days=21)
    for event in sim.run(speed=1440):   # history at once, then a simulated day per minute
        ...                             # event: a dict following schemas/flu_case.schema.json

Names load on first use, so importing the `simulate` command stays light (no numpy).
"""

from importlib import import_module

_EXPORTS = {
    "Simulator": "model",
    "DayBatch": "model",
    "to_json": "model",
    "Scenario": "scenario",
    "ScenarioError": "scenario",
    "DEFAULT_SCENARIO": "scenario",
    "load_scenario": "scenario",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = import_module(f"{__name__}.{_EXPORTS[name]}")
    return getattr(module, "load" if name == "load_scenario" else name)
