"""AWS-side helpers run from a user's machine with the user's credentials (`flu-monitor aws`)."""
