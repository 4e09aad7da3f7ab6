"""The daemon's runtime: its lifecycle (``daemon``), what outlives pipeline restarts
(``context``), the one place that decides order (``coordinator``) and the pipeline that
moves a stream to the sink under the ack rule (``pipeline``)."""
