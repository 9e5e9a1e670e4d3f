"""Studies: many attack runs, tables and plots."""
