"""The local web dashboard, drawn from quicksight/dashboard.yaml (see app.py)."""
