"""Scale-out: several web workers sharing rooms over Redis, fed by one shipper.

``relay`` is a web worker's hub whose lines arrive from Redis, ``shipper``
follows the files and publishes them, ``topology`` starts a whole set of
processes for a lesson or a test. It may import ``logstream.web``,
``logstream.core`` and ``logstream.support``; nothing imports it but the CLI
and the app factory when a message queue is configured.
"""
