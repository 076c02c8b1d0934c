"""The sandbox's internal caps, in one table: how much of what a child sends the
server keeps or accepts. (What an operator tunes per run is a `Limits` field.)"""

RESULT_LINE = 8 << 20
"""One result line (a case's output): the harness refuses to send more, the reader to keep it."""
RESULT_TOTAL = 16 << 20
"""All result lines of one run."""
MESSAGE = 2000
"""An exception message, as the harness reports it to the agent and the grader."""
TEXT = 4000
"""Any text the parent keeps from a result line (errors, load errors, test messages)."""
TEST_NAMES = 10_000
"""Tests one test file may declare."""
JSON_CONTAINERS = 1_000_000
"""Lists and dicts one result line may hold: a forged line of `[[],[],...]` costs the
server ~20 bytes of memory per byte of JSON, so it is refused before parsing."""
JSON_DEPTH = 120
"""Nesting of a result line (the verifier's comparators recurse over it)."""
REQUEST_PIPE = 1 << 20
"""The parent-to-child request pipe: a message that does not fit is refused, never blocks."""
CODE_INLINE = 60_000
"""A spare child's code up to this size comes in the message that starts it, larger in a memfd."""
READ_CHUNK = 1 << 16
"""One non-blocking read from a child's pipe."""
ZYGOTE_START_S = 120
"""How long a zygote may take to start (import, probe the layers, warm up)."""
KILL_GRACE_S = 5.0
"""How long a SIGKILLed child may take to be reported dead."""
