"""Teams and their scoped API keys (issue 36): who may call the API, with what scopes."""
