"""The handset daemon, its UDP transport and command-line tools."""
