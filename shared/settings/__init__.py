"""The settings by concern: one model per part of the service, each holding the variables
that part reads (names unchanged: a field's name is its environment variable).

`shared.config.Settings` is all of them together, read from the environment once; a part is
handed only its group (`settings.database`, `settings.queue`, ...), so what it can be
configured with is written in one short module."""
