"""plugin/: the pytest plugin of the suite (options, collection, shards, reduce, report); see conftest.py."""
