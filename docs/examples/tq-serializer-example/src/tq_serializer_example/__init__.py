"""An example third-party tq plugin: the ``compact-json`` serializer."""
