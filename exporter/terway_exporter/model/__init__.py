"""The bottom layer: immutable snapshots of the cloud and the cluster, source statuses and the
`ClusterState` built from them. It imports nothing from the rest of the package, so every layer
above (terway/, sources/, checks/, collectors/, findings/, the hub) can share these types."""
