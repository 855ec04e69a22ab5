"""rpc: protocol, services, remotes and gateway built on commitdb."""
