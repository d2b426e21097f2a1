"""The premiere load test: a whole evening of a famous creator going live, played against
livecore from a scenario file, judged against service objectives, drawn in a report.

    .venv/bin/python -m loadtests.premiere loadtests/scenarios/box.toml [--out DIR]

The tool starts what it plays against on 127.0.0.1 and stops it by PID afterwards: an
embedded PostgreSQL, a redis-server, a Stripe-shaped peer (the tests' own), and N
`livecore serve` nodes sharing them (or it plays against running nodes given by URL). Then
the timeline: the creator goes live (an aiortc publisher sending a 720p H.264 clip whose
frames carry their send time in an SEI), a countdown, the join ramp (chat sockets and
LL-HLS players that follow parts with blocking reloads, some decoding parts for
glass-to-glass), a chat storm, a tip burst (API, Stripe-shaped peer, signed webhooks, some
delivered twice), subscriptions, and faults at given times (kill -9 a node, restart Redis,
restart PostgreSQL, kill a packaging process, Stripe unreachable).

Modules: `scenario` (the TOML file), `deployment` (processes and faults), `generator` (the
viewers' processes), `chatclient` (a lean chat socket), `activity` (senders, tips,
subscriptions), `monitor` (CPU, memory, loop lag), `judge` (figures and objectives),
`report` (JSON and the HTML page).
"""
