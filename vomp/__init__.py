"""Sans-IO Serval mesh protocol core: overlay packets, MDP, DNA and VoMP. No sockets, threads or clocks."""
