"""The use cases: what the API, the periodic jobs and the command-line tools do, each
taking the application's context (`context.Services`). They raise the kinds of refusal in
`shared/errors.py`, never an HTTP status."""
