"""pingpost: the core of a serverless ping/post lead exchange (pingPostLead API)."""
