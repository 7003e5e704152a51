"""The Gemini API key pool: quotas and cooldowns in Redis, decided by Lua scripts."""
