"""`python -m flu_monitor ...` = `flu-monitor ...` (how `flu-monitor up` starts its processes)."""

from flu_monitor.cli import main

main(prog_name="flu-monitor")
