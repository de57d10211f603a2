"""Sans-IO Serval mesh protocol core: overlay packets, MDP, DNA and VoMP.

No sockets, threads or clocks in here: callers pass bytes and `now` in and get bytes,
timers and events out.
"""
