"""The pure translation core: plain functions and a state machine, no I/O."""
