"""The team's daily data work: release, checkout, versions, fetch and duplicates (`provision data`).

Each operation reads facts with one constant script, decides here (refusals, reports), and changes the
checkout with a second one. The scripts run only git and dvc, so they run the same in a local checkout
and, through provision.plays.data, over SSH on a host where provision is not installed.
"""
