"""Delivering task ids to the worker: the queue interface, its Redis and Cloud Tasks
backends, and the local consumer that plays Cloud Tasks on one machine."""
