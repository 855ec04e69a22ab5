"""commitdb: typed documents in a content-addressed commit DAG on LMDB."""
