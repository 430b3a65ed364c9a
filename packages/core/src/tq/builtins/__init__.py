"""Components that come with ``tq-core``: serializers and compressors from the stdlib."""
