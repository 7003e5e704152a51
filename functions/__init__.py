"""Thin HTTP handlers: parse, authorize, call one function in shared/, shape the reply."""
