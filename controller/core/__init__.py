"""The pure control core: readings, state, requests, validation, trips, modes, loops, metering
and the step that composes them. No I/O, no clock, no asyncio: data in, data out."""
