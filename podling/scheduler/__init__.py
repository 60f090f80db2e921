"""Scheduler: filter and score plugins that bind pending pods (issue 5)."""
