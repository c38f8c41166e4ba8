"""The Kubernetes edge: reads, the one conditional writer, the Leases, the namespaces' accounts."""
