"""Tagging: the result schema, the offline LocalTagger and (later) the Gemini tagger."""
